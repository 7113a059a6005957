import * as tf from "@tensorflow/tfjs";
import { Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, maxAbsoluteError, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { gelu } from "./gelu";
import { finiteDifferenceCheck, randomTensor } from "./testing/finite-difference";

// torch.nn.functional.gelu (exact) and its derivative in float64, PyTorch 1.13.
const X = [-3, -1.5, -1, -0.25, 0, 0.5, 1, 2, 4];
const TORCH_GELU = [
  -0.00404969409489031, -0.10021080190328704, -0.15865525393145702, -0.10032341857926907, 0,
  0.34573123063700656, 0.841344746068543, 1.9544997361036416, 3.9998733150326675,
];
const TORCH_GELU_GRAD = [
  -0.01194564720418392, -0.1274691922299796, -0.08331547058768635, 0.304626645116364, 0.5,
  0.8674951246561629, 1.0833154705876864, 1.085231801078197, 1.0005036496612265,
];

describe.each(TEST_BACKENDS)("gelu on %s", (backend) => {
  it("is the exact erf GELU of PyTorch, value and derivative", async () => {
    await withBackend(backend, () => {
      const x = tf.tensor1d(X);
      const y = gelu(x);
      // Absolute tolerance: tfjs-cpu's erf is Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7), which
      // is relatively large where GELU is tiny (x = −3); wasm's erf is accurate to float32.
      expect(maxAbsoluteError(y, TORCH_GELU)).toBeLessThan(3e-7);
      const g = tf.grad((t: tf.Tensor) => gelu(t))(x);
      expect(maxAbsoluteError(g, TORCH_GELU_GRAD)).toBeLessThan(5e-7);
      tf.dispose([x, y, g]);
    });
  });

  it("has a gradient that agrees with finite differences", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(7);
      const x = randomTensor([4, 9], rng, 2);
      const r = finiteDifferenceCheck((t) => gelu(t), [x], rng, { eps: 1e-3 });
      expect(r.worst, JSON.stringify(r.checks)).toBeLessThan(2e-3);
      x.dispose();
    });
  });
});

describe("gelu input checks", () => {
  it("rejects non-float input", () => {
    const x = tf.tensor1d([1, 2], "int32");
    expect(() => gelu(x)).toThrow(ShapeError);
    expect(() => gelu(x)).toThrow(/gelu x: expected a float32 tensor/);
    x.dispose();
  });
});
