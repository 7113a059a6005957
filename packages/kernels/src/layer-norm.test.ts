import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { layerNorm } from "./layer-norm";
import { finiteDifferenceCheck, randomTensor } from "./testing/finite-difference";

function layerNormReference(
  x: ArrayLike<number>,
  g: ArrayLike<number>,
  b: ArrayLike<number>,
  d: number,
  eps: number,
) {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2;
    v /= d; // biased, as torch.nn.LayerNorm
    for (let i = 0; i < d; i++)
      out[r * d + i] = ((x[r * d + i] - mean) / Math.sqrt(v + eps)) * g[i] + b[i];
  }
  return out;
}

describe.each(TEST_BACKENDS)("layerNorm on %s", (backend) => {
  it("normalises the last axis with biased variance and eps inside the root", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(4);
      const x = tf.add(randomTensor([2, 3, 8], rng, 3), 1.5);
      const g = randomTensor([8], rng);
      const b = randomTensor([8], rng);
      const eps = 1e-2; // large, so a misplaced eps shows
      const y = layerNorm(x, g, b, eps);
      expect(y.shape).toEqual([2, 3, 8]);
      expectClose(
        y,
        layerNormReference(x.dataSync(), g.dataSync(), b.dataSync(), 8, eps),
        1e-5,
        "layerNorm",
      );
      tf.dispose([x, g, b, y]);
    });
  });

  it("has gradients that agree with finite differences", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(5);
      const x = randomTensor([5, 7], rng);
      const g = tf.add(randomTensor([7], rng, 0.5), 1);
      const b = randomTensor([7], rng);
      const r = finiteDifferenceCheck((xi, gi, bi) => layerNorm(xi, gi, bi, 1e-6), [x, g, b], rng, {
        eps: 3e-3,
      });
      expect(r.worst, JSON.stringify(r.checks)).toBeLessThan(3e-3);
      tf.dispose([x, g, b]);
    });
  });

  it("matches tfjs's own autodiff of the composed moments graph", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(6);
      const x = randomTensor([2, 6, 16], rng, 2);
      const g = randomTensor([16], rng);
      const b = randomTensor([16], rng);
      const dy = randomTensor([2, 6, 16], rng);
      const composed = (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => {
        const { mean, variance } = tf.moments(xi, -1, true);
        return xi
          .sub(mean)
          .mul(tf.rsqrt(variance.add(1e-6)))
          .mul(gi)
          .add(bi);
      };
      const ours = tf.grads((xi, gi, bi) => layerNorm(xi, gi, bi, 1e-6))([x, g, b], dy);
      const ref = tf.grads(composed)([x, g, b], dy);
      ours.forEach((t, i) => {
        expectClose(t, ref[i], 1e-4, `grad ${i}`);
      });
      tf.dispose([x, g, b, dy, ...ours, ...ref]);
    });
  });
});

describe("layerNorm input checks", () => {
  it("rejects mis-shaped affine parameters and a bad eps", () => {
    const x = tf.zeros([2, 4]);
    expect(() => layerNorm(x, tf.ones([3]), tf.zeros([4]))).toThrow(ShapeError);
    expect(() => layerNorm(x, tf.ones([4]), tf.zeros([3]))).toThrow(
      /layerNorm beta: expected a tensor of shape \[4\]/,
    );
    expect(() => layerNorm(x, tf.ones([4]), tf.zeros([4]), 0)).toThrow(ConfigError);
    x.dispose();
  });
});
