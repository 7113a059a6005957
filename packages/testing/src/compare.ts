import * as tf from "@tensorflow/tfjs";
import { expect } from "vitest";

type Numeric = tf.Tensor | ArrayLike<number> | number;

function toArray(x: Numeric): Float64Array {
  if (typeof x === "number") return Float64Array.of(x);
  if (x instanceof tf.Tensor) return Float64Array.from(x.dataSync() as ArrayLike<number>);
  return Float64Array.from(x);
}

/** max |a-b| / max(|b|, floor): relative error against the reference `expected`. */
export function maxRelativeError(actual: Numeric, expected: Numeric, floor = 1e-6): number {
  const a = toArray(actual);
  const b = toArray(expected);
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  // Scale by the reference's magnitude so that tiny entries near zero don't dominate.
  let scale = floor;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    worst = Math.max(worst, d / Math.max(Math.abs(b[i]), scale * 1e-3, floor));
  }
  return worst;
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

/**
 * Assert that `actual` matches the reference within a relative tolerance. The element error is
 * |a-b| / max(|b|, 1e-3·max|b|): relative for normal entries, scaled by the tensor's magnitude for
 * entries near zero (where float32 cancellation makes a pure relative error meaningless).
 */
export function expectClose(
  actual: Numeric,
  expected: Numeric,
  rtol: number,
  label = "value",
): void {
  if (actual instanceof tf.Tensor && expected instanceof tf.Tensor) {
    expect(actual.shape, `${label} shape`).toEqual(expected.shape);
  }
  const err = maxRelativeError(actual, expected);
  expect(err, `${label}: max relative error ${err.toExponential(3)} > ${rtol}`).toBeLessThanOrEqual(
    rtol,
  );
}
