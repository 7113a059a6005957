import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { multiHeadAttention, packedSelfAttention } from "./attention";
import { finiteDifferenceCheck, randomTensor } from "./testing/finite-difference";

/** Attention in float64 on the host: per batch and head, softmax(scale·q·kᵀ)·v. */
function attentionReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  [b, nq, nk, d, h]: number[],
  scale: number,
) {
  const hd = d / h;
  const out = new Float64Array(b * nq * d);
  const probs = new Float64Array(b * h * nq * nk);
  for (let bi = 0; bi < b; bi++)
    for (let hi = 0; hi < h; hi++)
      for (let i = 0; i < nq; i++) {
        const s = new Float64Array(nk);
        for (let j = 0; j < nk; j++) {
          let acc = 0;
          for (let c = 0; c < hd; c++)
            acc += q[(bi * nq + i) * d + hi * hd + c] * k[(bi * nk + j) * d + hi * hd + c];
          s[j] = acc * scale;
        }
        const m = Math.max(...s);
        let z = 0;
        for (let j = 0; j < nk; j++) z += Math.exp(s[j] - m);
        for (let j = 0; j < nk; j++) {
          const p = Math.exp(s[j] - m) / z;
          probs[((bi * h + hi) * nq + i) * nk + j] = p;
          for (let c = 0; c < hd; c++)
            out[(bi * nq + i) * d + hi * hd + c] += p * v[(bi * nk + j) * d + hi * hd + c];
        }
      }
  return { out, probs };
}

describe.each(TEST_BACKENDS)("multiHeadAttention on %s", (backend) => {
  it("computes softmax(QKᵀ·scale)·V per head, with probabilities on request", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(10);
      const [b, nq, nk, d, h] = [2, 5, 7, 12, 3];
      const q = randomTensor([b, nq, d], rng);
      const k = randomTensor([b, nk, d], rng);
      const v = randomTensor([b, nk, d], rng);
      const { output, probabilities } = multiHeadAttention(q, k, v, {
        numHeads: h,
        returnProbabilities: true,
      });
      const ref = attentionReference(
        q.dataSync(),
        k.dataSync(),
        v.dataSync(),
        [b, nq, nk, d, h],
        (d / h) ** -0.5,
      );
      expect(output.shape).toEqual([b, nq, d]);
      expect(probabilities?.shape).toEqual([b, h, nq, nk]);
      // float32 against a float64 reference: outputs are sums of mixed signs, hence 5e-5
      expectClose(output, ref.out, 5e-5, "output");
      expectClose(probabilities!, ref.probs, 1e-5, "probabilities");
      const custom = multiHeadAttention(q, k, v, { numHeads: h, scale: 0.3 });
      expect(custom.probabilities).toBeUndefined();
      expectClose(
        custom.output,
        attentionReference(q.dataSync(), k.dataSync(), v.dataSync(), [b, nq, nk, d, h], 0.3).out,
        5e-5,
        "scale 0.3",
      );
      tf.dispose([q, k, v, output, probabilities!, custom.output]);
    });
  });

  it("has gradients for q, k and v that agree with finite differences", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(11);
      const q = randomTensor([2, 4, 6], rng);
      const k = randomTensor([2, 5, 6], rng);
      const v = randomTensor([2, 5, 6], rng);
      const r = finiteDifferenceCheck(
        (qi, ki, vi) => multiHeadAttention(qi, ki, vi, { numHeads: 2 }).output,
        [q, k, v],
        rng,
        { eps: 3e-3 },
      );
      expect(r.worst, JSON.stringify(r.checks)).toBeLessThan(3e-3);
      tf.dispose([q, k, v]);
    });
  });

  it("packed self-attention equals attention on the three slices, and its gradient agrees with finite differences", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(12);
      const [b, n, d, h] = [2, 5, 9, 3];
      const qkv = randomTensor([b, n, 3 * d], rng);
      const packed = packedSelfAttention(qkv, { numHeads: h, returnProbabilities: true });
      const data = qkv.dataSync();
      const part = (o: number) => {
        const a = new Float64Array(b * n * d);
        for (let r = 0; r < b * n; r++)
          for (let c = 0; c < d; c++) a[r * d + c] = data[r * 3 * d + o * d + c];
        return a;
      };
      const ref = attentionReference(part(0), part(1), part(2), [b, n, n, d, h], (d / h) ** -0.5);
      expectClose(packed.output, ref.out, 5e-5, "packed output");
      expectClose(packed.probabilities!, ref.probs, 1e-5, "packed probabilities");
      const r = finiteDifferenceCheck(
        (x) => packedSelfAttention(x, { numHeads: h }).output,
        [qkv],
        rng,
        { eps: 3e-3, directions: 4 },
      );
      expect(r.worst, JSON.stringify(r.checks)).toBeLessThan(3e-3);
      tf.dispose([qkv, packed.output, packed.probabilities!]);
    });
  });

  it("matches tfjs's own autodiff of the composed attention graph", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(13);
      const [b, n, d, h] = [2, 6, 8, 2];
      const q = randomTensor([b, n, d], rng);
      const k = randomTensor([b, n, d], rng);
      const v = randomTensor([b, n, d], rng);
      const dy = randomTensor([b, n, d], rng);
      const heads = (t: tf.Tensor) => t.reshape([b, n, h, d / h]).transpose([0, 2, 1, 3]);
      const composed = (qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor) =>
        tf
          .matMul(
            tf.softmax(tf.matMul(heads(qi), heads(ki), false, true).mul((d / h) ** -0.5)),
            heads(vi),
          )
          .transpose([0, 2, 1, 3])
          .reshape([b, n, d]);
      const ours = tf.grads((qi, ki, vi) => multiHeadAttention(qi, ki, vi, { numHeads: h }).output)(
        [q, k, v],
        dy,
      );
      const ref = tf.grads(composed)([q, k, v], dy);
      ours.forEach((g, i) => {
        expectClose(g, ref[i], 1e-4, `grad ${"qkv"[i]}`);
      });
      tf.dispose([q, k, v, dy, ...ours, ...ref]);
    });
  });

  it("leaks no tensors in forward + backward, probabilities included", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(14);
      const qkv = tf.variable(randomTensor([2, 5, 12], rng));
      const before = tf.memory().numTensors;
      for (let i = 0; i < 2; i++) {
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => {
            const r = packedSelfAttention(qkv, { numHeads: 2, returnProbabilities: true });
            return tf.add(tf.sum(r.output), tf.sum(r.probabilities!));
          });
          expect(Number.isFinite(value.dataSync()[0])).toBe(true);
          expect(grads[qkv.name].shape).toEqual([2, 5, 12]);
        });
        const inference = packedSelfAttention(qkv, { numHeads: 2, returnProbabilities: true });
        tf.dispose([inference.output, inference.probabilities!]);
      }
      expect(tf.memory().numTensors).toBe(before);
      qkv.dispose();
    });
  });
});

describe("attention input checks", () => {
  it("rejects heads that do not divide the width, and mis-shaped inputs", () => {
    const x = tf.zeros([1, 3, 8]);
    expect(() => multiHeadAttention(x, x, x, { numHeads: 3 })).toThrow(ConfigError);
    expect(() => multiHeadAttention(x, x, x, { numHeads: 3 })).toThrow(
      /numHeads: expected a divisor of the model width 8, got 3/,
    );
    expect(() => multiHeadAttention(x, x, x, { numHeads: 0 })).toThrow(/numHeads/);
    const k = tf.zeros([1, 4, 6]);
    expect(() => multiHeadAttention(x, k, k, { numHeads: 2 })).toThrow(ShapeError);
    expect(() => multiHeadAttention(x, x, tf.zeros([1, 2, 8]), { numHeads: 2 })).toThrow(
      /multiHeadAttention v/,
    );
    expect(() => packedSelfAttention(tf.zeros([1, 3, 10]), { numHeads: 2 })).toThrow(/3·D/);
    expect(() => packedSelfAttention(tf.zeros([3, 24]), { numHeads: 2 })).toThrow(/\[B, N, D\]/);
    tf.dispose([x, k]);
  });
});
