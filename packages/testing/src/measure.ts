import * as tf from "@tensorflow/tfjs";

// The error measures of the fixtures' tolerances, without vitest: benchmarks bundled for the GPU
// pack (tools/bench/gpu) use them too.

export type Numeric = tf.Tensor | ArrayLike<number> | number;

function toArray(x: Numeric): Float64Array {
  if (typeof x === "number") return Float64Array.of(x);
  if (x instanceof tf.Tensor) return Float64Array.from(x.dataSync() as ArrayLike<number>);
  return Float64Array.from(x);
}

/**
 * Relative error in the max norm: max|a − b| / max|b| (b = the reference). This is the measure the
 * fixtures' tolerances are stated in ("1e-5 relative for forward values, 1e-4 for gradients"):
 * float32 results computed in a different summation order differ by a few ulps of the tensor's
 * magnitude, so an element-wise ratio is meaningless for entries near zero (e.g. after BatchNorm).
 */
export function maxRelativeError(actual: Numeric, expected: Numeric, floor = 1e-12): number {
  const a = toArray(actual);
  const b = toArray(expected);
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let scale = floor;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    worst = Math.max(worst, d);
  }
  return worst / scale;
}

export function maxAbsoluteError(actual: Numeric, expected: Numeric): number {
  const a = toArray(actual);
  const b = toArray(expected);
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    worst = Math.max(worst, d);
  }
  return worst;
}
