import * as tf from "@tensorflow/tfjs";
import { BatchNorm1d, Linear, Module, type Rng, ShapeError, checkNumber } from "@sit/core";

/** Options of {@link LinearHead}. */
export interface LinearHeadOptions {
  /** Put a BatchNorm without affine parameters before the linear layer (MAE's linear probe). Default false. */
  batchNorm?: boolean;
  /** Initial weights (trunc-normal std 0.02 as timm, bias 0 — DINO/MAE init their probes this way). */
  rng: Rng;
}

/**
 * A linear classifier on frozen features: optional BatchNorm1d(affine = false, eps 1e-6, as MAE)
 * then Linear(D, C). Parameter names `bn.*` and `linear.*`.
 */
export class LinearHead extends Module {
  readonly linear: Linear;
  readonly bn: BatchNorm1d | null;

  constructor(
    readonly inFeatures: number,
    readonly numClasses: number,
    options: LinearHeadOptions,
  ) {
    super();
    checkNumber("inFeatures", inFeatures, { integer: true, min: 1 });
    checkNumber("numClasses", numClasses, { integer: true, min: 1 });
    this.bn = options.batchNorm
      ? this.registerModule("bn", new BatchNorm1d(inFeatures, { affine: false, eps: 1e-6 }))
      : null;
    this.linear = this.registerModule(
      "linear",
      new Linear(inFeatures, numClasses, { rng: options.rng }),
    );
  }

  /** Logits `[B, numClasses]` of features `[B, inFeatures]`. */
  apply(features: tf.Tensor): tf.Tensor2D {
    if (features.rank !== 2 || features.shape[1] !== this.inFeatures)
      throw new ShapeError(
        `features: expected [B, ${this.inFeatures}] (the head's input size), got [${features.shape}]` +
          (features.rank === 2 ? " — the backbone's feature size does not match this head" : ""),
      );
    return tf.tidy(
      () => this.linear.apply(this.bn ? this.bn.apply(features) : features) as tf.Tensor2D,
    );
  }

  /** Class scores (logits) of every row of a row-major `[n, inFeatures]` array, in eval mode, in chunks. */
  predict(features: Float32Array, dim: number, chunk = 4096): Float32Array {
    if (dim !== this.inFeatures)
      throw new ShapeError(
        `features: expected dimension ${this.inFeatures} (the head's input size), got ${dim} — the backbone's feature size does not match this head`,
      );
    const n = features.length / dim;
    const out = new Float32Array(n * this.numClasses);
    const wasTraining = this.training;
    this.eval();
    try {
      for (let s = 0; s < n; s += chunk) {
        const rows = Math.min(chunk, n - s);
        const logits = tf.tidy(() =>
          this.apply(tf.tensor2d(features.subarray(s * dim, (s + rows) * dim), [rows, dim])),
        );
        out.set(logits.dataSync(), s * this.numClasses);
        logits.dispose();
      }
    } finally {
      this.train(wasTraining);
    }
    return out;
  }
}
