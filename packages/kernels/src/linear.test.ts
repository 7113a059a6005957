import * as tf from "@tensorflow/tfjs";
import { Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { linear } from "./linear";
import { finiteDifferenceCheck, randomTensor } from "./testing/finite-difference";

/** y[m, o] = Σ_i x[m, i]·w[i, o] + b[o], in float64 on the host. */
function linearReference(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  m: number,
  i: number,
  o: number,
) {
  const y = new Float64Array(m * o);
  for (let r = 0; r < m; r++)
    for (let c = 0; c < o; c++) {
      let s = b ? b[c] : 0;
      for (let k = 0; k < i; k++) s += x[r * i + k] * w[k * o + c];
      y[r * o + c] = s;
    }
  return y;
}

describe.each(TEST_BACKENDS)("linear on %s", (backend) => {
  it("computes x·W + b over the last axis of a rank-3 input", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(1);
      const x = randomTensor([2, 5, 7], rng);
      const w = randomTensor([7, 4], rng);
      const b = randomTensor([4], rng);
      const y = linear(x, w, b);
      expect(y.shape).toEqual([2, 5, 4]);
      const ref = linearReference(
        x.dataSync() as Float32Array,
        w.dataSync() as Float32Array,
        b.dataSync() as Float32Array,
        10,
        7,
        4,
      );
      expectClose(y, ref, 1e-5, "linear");
      const y0 = linear(x, w);
      expectClose(
        y0,
        linearReference(x.dataSync() as Float32Array, w.dataSync() as Float32Array, null, 10, 7, 4),
        1e-5,
        "linear without bias",
      );
      tf.dispose([x, w, b, y, y0]);
    });
  });

  it("has gradients that agree with finite differences (with and without bias)", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(2);
      const x = randomTensor([3, 4, 6], rng);
      const w = randomTensor([6, 5], rng);
      const b = randomTensor([5], rng);
      const withBias = finiteDifferenceCheck((xi, wi, bi) => linear(xi, wi, bi), [x, w, b], rng);
      expect(withBias.worst, JSON.stringify(withBias.checks)).toBeLessThan(2e-3);
      const noBias = finiteDifferenceCheck((xi, wi) => linear(xi, wi), [x, w], rng);
      expect(noBias.worst, JSON.stringify(noBias.checks)).toBeLessThan(2e-3);
      tf.dispose([x, w, b]);
    });
  });

  it("matches tfjs's own autodiff of matMul + add", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(3);
      const x = randomTensor([9, 6], rng);
      const w = randomTensor([6, 5], rng);
      const b = randomTensor([5], rng);
      const dy = randomTensor([9, 5], rng);
      const ours = tf.grads((xi, wi, bi) => linear(xi, wi, bi))([x, w, b], dy);
      const ref = tf.grads((xi, wi, bi) => tf.add(tf.matMul(xi, wi), bi))([x, w, b], dy);
      ours.forEach((g, i) => {
        expectClose(g, ref[i], 1e-5, `grad ${i}`);
      });
      tf.dispose([x, w, b, dy, ...ours, ...ref]);
    });
  });
});

describe("linear input checks", () => {
  it("names the mismatched argument", () => {
    const x = tf.zeros([2, 3]);
    const w = tf.zeros([4, 5]);
    expect(() => linear(x, w)).toThrow(ShapeError);
    expect(() => linear(x, w)).toThrow(/linear x: expected a tensor whose last axis is 4/);
    expect(() => linear(x, tf.zeros([3]))).toThrow(/linear weight: expected a rank-2 tensor/);
    expect(() => linear(x, tf.zeros([3, 5]), tf.zeros([4]))).toThrow(
      /linear bias: expected a tensor of shape \[5\]/,
    );
    tf.dispose([x, w]);
  });
});
