import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../rng";

/**
 * Truncated normal as timm's `trunc_normal_(std=0.02)`: N(mean, std²) redrawn outside
 * [a, b] (absolute bounds, default ±2, i.e. ±100·std for std 0.02 — timm's defaults, so in
 * practice untruncated). Drawn from the explicit Rng so a seed fixes the initialisation.
 */
export function truncNormal(
  shape: number[],
  rng: Rng,
  std = 0.02,
  mean = 0,
  a = -2,
  b = 2,
): tf.Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = rng.normal(mean, std);
    while (v < a || v > b) v = rng.normal(mean, std);
    out[i] = v;
  }
  return tf.tensor(out, shape, "float32");
}

/** U(-bound, bound) with PyTorch's default Linear/Conv bound 1/sqrt(fanIn) (Kaiming-uniform with a = √5). */
export function kaimingUniform(shape: number[], fanIn: number, rng: Rng): tf.Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
  return tf.tensor(out, shape, "float32");
}
