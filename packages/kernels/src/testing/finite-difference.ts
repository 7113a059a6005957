// Test support (not exported from the package): finite-difference checks of custom gradients.
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "@sit/core";

/** A float32 tensor of N(0, std²) values drawn from `rng`. */
export function randomTensor(shape: number[], rng: Rng, std = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.fillNormal(new Float32Array(n), 0, std), shape, "float32");
}

function dot64(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export interface FiniteDifferenceReport {
  /** Per input, per direction: analytic ⟨∇L, u⟩ and central-difference estimate. */
  checks: { input: number; analytic: number; numeric: number; relError: number }[];
  worst: number;
}

/**
 * Compare the gradient tfjs computes for `f` against central differences. The scalar checked is
 * L(xs) = Σ f(xs) ⊙ W with a fixed random W, summed in float64 on the host to keep rounding out of
 * the difference quotient. For every input, `directions` random Gaussian directions u are probed:
 * (L(x+εu) − L(x−εu)) / 2ε versus ⟨∂L/∂x, u⟩.
 */
export function finiteDifferenceCheck(
  f: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  rng: Rng,
  { eps = 1e-2, directions = 3 }: { eps?: number; directions?: number } = {},
): FiniteDifferenceReport {
  const outShape = tf.tidy(() => f(...inputs).shape);
  const w = randomTensor(outShape, rng);
  const wData = w.dataSync();
  const loss64 = (xs: tf.Tensor[]): number => {
    const y = tf.tidy(() => f(...xs));
    const v = dot64(y.dataSync(), wData);
    y.dispose();
    return v;
  };
  const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), w)))(inputs);
  const checks: FiniteDifferenceReport["checks"] = [];
  inputs.forEach((x, i) => {
    const g = grads[i].dataSync();
    for (let d = 0; d < directions; d++) {
      const u = randomTensor(x.shape, rng);
      const analytic = dot64(g, u.dataSync());
      const plus = inputs.map((t, j) => (j === i ? tf.add(t, tf.mul(u, eps)) : t));
      const minus = inputs.map((t, j) => (j === i ? tf.sub(t, tf.mul(u, eps)) : t));
      const numeric = (loss64(plus) - loss64(minus)) / (2 * eps);
      plus[i].dispose();
      minus[i].dispose();
      u.dispose();
      const relError =
        Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 1e-3);
      checks.push({ input: i, analytic, numeric, relError });
    }
  });
  tf.dispose(grads);
  w.dispose();
  return { checks, worst: Math.max(...checks.map((c) => c.relError)) };
}
