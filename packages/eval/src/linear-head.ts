import * as tf from "@tensorflow/tfjs";
import { BatchNorm1d, IOError, Linear, Module, type Rng, ShapeError, checkNumber } from "@sit/core";
import { loadSafetensors, writeSafetensors } from "@sit/core/node";

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

/** Save a head (weights and BatchNorm statistics) as safetensors, atomically, with its sizes in the metadata. */
export function saveLinearHead(path: string, head: LinearHead): void {
  writeSafetensors(path, head.stateDict(), {
    format: "sit-linear-head",
    inFeatures: String(head.inFeatures),
    numClasses: String(head.numClasses),
    batchNorm: String(head.bn !== null),
  });
}

/**
 * Load a head written by {@link saveLinearHead}. With `expectedInFeatures` (the backbone's feature
 * size), a head trained on another feature size is refused with a ShapeError naming both sizes.
 */
export function loadLinearHead(
  path: string,
  options: { rng: Rng; expectedInFeatures?: number },
): LinearHead {
  const { tensors, metadata } = loadSafetensors(path);
  try {
    if (metadata.format !== "sit-linear-head")
      throw new IOError(
        `${path}: expected a linear head written by saveLinearHead, got format ${JSON.stringify(metadata.format)}`,
      );
    const inFeatures = Number(metadata.inFeatures);
    const numClasses = Number(metadata.numClasses);
    if (options.expectedInFeatures !== undefined && options.expectedInFeatures !== inFeatures)
      throw new ShapeError(
        `${path}: the head expects ${inFeatures}-dimensional features, but the backbone gives ${options.expectedInFeatures}`,
      );
    const head = new LinearHead(inFeatures, numClasses, {
      rng: options.rng,
      batchNorm: metadata.batchNorm === "true",
    });
    head.loadStateDict(tensors);
    return head;
  } finally {
    tf.dispose(Object.values(tensors));
  }
}
