import * as tf from "@tensorflow/tfjs";
import { expect } from "vitest";

import { type Numeric, maxAbsoluteError, maxRelativeError } from "./measure";

export { maxAbsoluteError, maxRelativeError };

/**
 * Assert that `actual` matches the reference within `rtol` in {@link maxRelativeError}'s measure,
 * or, when `atol` is given, within `atol` absolutely (for tensors that are zero in exact
 * arithmetic, e.g. the gradient of a bias followed by BatchNorm, where both sides are rounding noise).
 */
export function expectClose(
  actual: Numeric,
  expected: Numeric,
  rtol: number,
  label = "value",
  atol?: number,
): void {
  if (actual instanceof tf.Tensor && expected instanceof tf.Tensor) {
    expect(actual.shape, `${label} shape`).toEqual(expected.shape);
  }
  if (atol !== undefined && maxAbsoluteError(actual, expected) <= atol) return;
  const err = maxRelativeError(actual, expected);
  expect(err, `${label}: max relative error ${err.toExponential(3)} > ${rtol}`).toBeLessThanOrEqual(
    rtol,
  );
}
