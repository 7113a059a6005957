// Fake recipes and loaders for this package's tests (not exported).
import { AdamW, type AdamWState, Rng, type RngState } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import type { LaunchedStep, Recipe, RecipeState, StepResult } from "./recipe";

export interface RegressionBatch {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
}

const DIM = 6;
const TRUE_W = [0.5, -1, 2, 0.25, -0.75, 1.5];

/**
 * A deterministic loader: epoch `e` yields `batches` batches drawn from `Rng.seed(1000 + e)`,
 * created lazily (tensors exist only once yielded).
 */
export function regressionLoader(batches: number, batchSize = 8) {
  return function* epoch(e: number): Generator<RegressionBatch> {
    const rng = Rng.seed(1000 + e);
    for (let b = 0; b < batches; b++) {
      const x = new Float32Array(batchSize * DIM);
      rng.fillNormal(x);
      const y = new Float32Array(batchSize);
      for (let i = 0; i < batchSize; i++) {
        let s = 0.1 * rng.normal();
        for (let j = 0; j < DIM; j++) s += x[i * DIM + j] * TRUE_W[j];
        y[i] = s;
      }
      yield { x: tf.tensor2d(x, [batchSize, DIM]), y: tf.tensor2d(y, [batchSize, 1]) };
    }
  };
}

/**
 * Linear regression (weight + bias) trained with @sit/core's AdamW (moments, step count and group
 * settings are state; per-tensor clipping on), with a random dropout mask on the inputs drawn from
 * its own Rng (so the Rng state matters for resume) and a cosine learning-rate schedule indexed by
 * the global step.
 */
export class RegressionRecipe implements Recipe<RegressionBatch> {
  readonly name = "fake-regression";
  readonly w = tf.tidy(() => tf.variable(tf.zeros([DIM, 1]), true));
  readonly b = tf.tidy(() => tf.variable(tf.zeros([1]), true));
  readonly optimizer: AdamW;
  private rng: Rng;
  /** Steps at which the loss is reported as NaN (guard tests). */
  nanAt = new Set<number>();
  /** Leak one tensor per step (leak tests). */
  leak = false;
  /** From this step on the learning rate is 1e30 (`--lr 1e30`): the weights blow up for real. */
  divergeFrom = Number.POSITIVE_INFINITY;

  constructor(
    seed = 7,
    readonly totalSteps = 100,
  ) {
    this.rng = Rng.seed(seed);
    this.optimizer = new AdamW(
      [
        ["w", this.w],
        ["b", this.b],
      ],
      { lr: 0.05, weightDecay: 0.01, clipPerTensor: 3 },
    );
  }

  lr(step: number): number {
    return 0.05 * 0.5 * (1 + Math.cos((Math.PI * step) / this.totalSteps));
  }

  /** The update of `step`: its lr and the loss tensor (computed before the update). */
  private update(batch: RegressionBatch, step: number): { lr: number; loss: tf.Scalar } {
    const lr = this.lr(step) * (step >= this.divergeFrom ? 1e30 : 1);
    this.optimizer.setLr(lr);
    const keep = new Float32Array(DIM).map(() => (this.rng.bernoulli(0.8) ? 1.25 : 0));
    const loss = tf.tidy(() => {
      const mask = tf.tensor2d(keep, [1, DIM]);
      const { value, grads } = tf.variableGrads(
        () =>
          tf.losses.meanSquaredError(
            batch.y,
            batch.x.mul(mask).matMul(this.w).add(this.b),
          ) as tf.Scalar,
        [this.w, this.b],
      );
      this.optimizer.step({ w: grads[this.w.name], b: grads[this.b.name] });
      return value;
    });
    if (this.leak) tf.scalar(0);
    return { lr, loss };
  }

  trainStep(batch: RegressionBatch, step: number): StepResult {
    const { lr, loss: lossT } = this.update(batch, step);
    const loss = lossT.dataSync()[0];
    lossT.dispose();
    const reported = this.nanAt.has(step) ? Number.NaN : loss;
    return { loss: reported, terms: { mse: reported, half: loss / 2 }, schedule: { lr } };
  }

  /** Steps launched, in order (late-read tests check what was launched before what was read). */
  readonly launched: number[] = [];

  /** The same step, its values `[loss, mse, half]` left as a tensor (read late by fit). */
  launchStep(batch: RegressionBatch, step: number): LaunchedStep {
    this.launched.push(step);
    const { lr, loss } = this.update(batch, step);
    const nan = this.nanAt.has(step);
    const values = tf.tidy(() => {
      const reported = nan ? tf.scalar(Number.NaN) : loss;
      return tf.stack([reported, reported, tf.div(loss, 2)]);
    });
    loss.dispose();
    return { values, terms: ["mse", "half"], schedule: { lr } };
  }

  saveState(): RecipeState {
    const opt = this.optimizer.state();
    const tensors: Record<string, tf.Tensor> = { w: this.w, b: this.b };
    for (const [k, t] of Object.entries(opt.tensors)) tensors[`optimizer.${k}`] = t;
    return {
      tensors,
      meta: { rng: this.rng.state(), optimizer: { step: opt.step, groups: opt.groups } },
    };
  }

  loadState(state: RecipeState): void {
    this.w.assign(state.tensors.w);
    this.b.assign(state.tensors.b);
    const tensors: Record<string, tf.Tensor> = {};
    for (const [k, t] of Object.entries(state.tensors))
      if (k.startsWith("optimizer.")) tensors[k.slice("optimizer.".length)] = t;
    const opt = state.meta.optimizer as Omit<AdamWState, "tensors">;
    this.optimizer.loadState({ ...opt, tensors });
    this.rng = Rng.fromState(state.meta.rng as RngState);
  }

  dispose(): void {
    this.optimizer.dispose();
    tf.dispose([this.w, this.b]);
  }
}
