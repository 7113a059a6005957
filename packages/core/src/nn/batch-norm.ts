import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber, invalidArgument } from "../errors";
import { Module } from "./module";

/** Options of {@link BatchNorm1d}; defaults are PyTorch's. */
export interface BatchNorm1dOptions {
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /**
   * Weight of the current batch in the running statistics (default 0.1). `null` uses a cumulative
   * average (factor 1/num_batches_tracked), as PyTorch does for `momentum=None`.
   */
  momentum?: number | null;
  /** Learnable per-feature scale `weight` and shift `bias` (default true). */
  affine?: boolean;
  /** Keep `running_mean` / `running_var` / `num_batches_tracked` buffers (default true). */
  trackRunningStats?: boolean;
}

/**
 * Batch normalisation over the last axis (features), PyTorch's `nn.BatchNorm1d` semantics.
 * Accepts `[N, C]` or `[N, L, C]` (statistics over every axis but the last; PyTorch's `[N, C, L]`
 * is channels-second, ours channels-last).
 *
 * - Train mode: normalises with the batch mean and the *biased* batch variance, and updates
 *   `running_mean` / `running_var` with `momentum`, using the *unbiased* variance for
 *   `running_var`; increments `num_batches_tracked`.
 * - Eval mode: normalises with the running statistics.
 *
 * Buffers are named `running_mean`, `running_var`, `num_batches_tracked` (int32 scalar) and
 * parameters `weight`, `bias`, as in PyTorch, so state dicts load by name.
 */
export class BatchNorm1d extends Module {
  readonly weight: tf.Variable | null;
  readonly bias: tf.Variable | null;
  readonly runningMean: tf.Variable | null;
  readonly runningVar: tf.Variable | null;
  readonly numBatchesTracked: tf.Variable | null;
  readonly eps: number;
  readonly momentum: number | null;

  constructor(
    readonly numFeatures: number,
    options: BatchNorm1dOptions = {},
  ) {
    super();
    checkNumber("numFeatures", numFeatures, { integer: true, min: 1 });
    this.eps = checkNumber("eps", options.eps ?? 1e-5, { min: 0, minExclusive: true });
    const momentum = options.momentum === undefined ? 0.1 : options.momentum;
    if (momentum !== null) checkNumber("momentum", momentum, { min: 0, max: 1 });
    this.momentum = momentum;
    const affine = options.affine ?? true;
    const track = options.trackRunningStats ?? true;
    this.weight = affine ? this.registerParameter("weight", tf.ones([numFeatures])) : null;
    this.bias = affine ? this.registerParameter("bias", tf.zeros([numFeatures])) : null;
    this.runningMean = track ? this.registerBuffer("running_mean", tf.zeros([numFeatures])) : null;
    this.runningVar = track ? this.registerBuffer("running_var", tf.ones([numFeatures])) : null;
    this.numBatchesTracked = track
      ? this.registerBuffer("num_batches_tracked", tf.scalar(0, "int32"))
      : null;
  }

  /** Normalise `x` (`[N, C]` or `[N, L, C]`); in train mode also update the running statistics. */
  apply(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 2 && x.rank !== 3)
      throw invalidArgument("BatchNorm1d input", x, "a tensor of rank 2 [N, C] or 3 [N, L, C]");
    if (x.shape[x.rank - 1] !== this.numFeatures)
      throw new ShapeError(
        `BatchNorm1d input (last axis): expected ${this.numFeatures} features, got shape [${x.shape.join(", ")}]`,
      );
    const useBatchStats = this.training || this.runningMean === null;
    const axes = x.rank === 2 ? [0] : [0, 1];
    const count = axes.reduce((n, a) => n * x.shape[a], 1);
    if (useBatchStats && count < 2)
      throw new ShapeError(
        `BatchNorm1d (train mode): expected more than 1 value per feature, got input shape [${x.shape.join(", ")}]`,
      );
    return tf.tidy(() => {
      let mean: tf.Tensor;
      let variance: tf.Tensor;
      if (useBatchStats) {
        const m = tf.moments(x, axes);
        mean = m.mean;
        variance = m.variance;
        if (this.training && this.runningMean && this.runningVar && this.numBatchesTracked)
          this.updateRunningStats(mean, variance, count);
      } else {
        mean = this.runningMean as tf.Variable;
        variance = this.runningVar as tf.Variable;
      }
      // Same arithmetic as PyTorch's CPU kernel: y = x·α + β with α = γ/√(σ²+ε), β = b − μ·α.
      let alpha = tf.rsqrt(variance.add(this.eps));
      if (this.weight) alpha = alpha.mul(this.weight);
      let beta = mean.mul(alpha).neg();
      if (this.bias) beta = beta.add(this.bias);
      return x.mul(alpha).add(beta);
    });
  }

  // Bookkeeping only: these assignments feed no output, so a gradient tape never follows them.
  private updateRunningStats(mean: tf.Tensor, biasedVar: tf.Tensor, count: number): void {
    const rm = this.runningMean as tf.Variable;
    const rv = this.runningVar as tf.Variable;
    const nbt = this.numBatchesTracked as tf.Variable;
    tf.tidy(() => {
      const tracked = nbt.add(tf.scalar(1, "int32"));
      nbt.assign(tracked);
      const unbiased = biasedVar.mul(count / (count - 1));
      // momentum null: cumulative average over the batches seen so far.
      const factor: tf.Tensor | number =
        this.momentum === null ? tf.reciprocal(tracked.cast("float32")) : this.momentum;
      const keep = typeof factor === "number" ? 1 - factor : tf.sub(1, factor);
      rm.assign(rm.mul(keep).add(mean.mul(factor)));
      rv.assign(rv.mul(keep).add(unbiased.mul(factor)));
    });
  }
}
