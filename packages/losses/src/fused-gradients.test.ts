import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { maskedReconstructionLoss, mocoV3Loss } from "./index";
import { l2Normalize, softmaxCrossEntropy, stopGradient } from "./ops";

// mocoV3Loss and maskedReconstructionLoss carry hand-written gradients (one custom gradient each,
// for fewer kernels): checked against tfjs's autodiff of the plain composition of ops, and against
// central differences of the loss (float64 sums on the host).

/** The plain compositions, differentiated by tfjs. */
function mocoByOps(q: tf.Tensor, k: tf.Tensor, temperature: number, eps = 1e-12): tf.Scalar {
  const qn = l2Normalize(q as tf.Tensor2D, eps);
  const kn = l2Normalize(stopGradient(k) as tf.Tensor2D, eps);
  const logits = tf.div(tf.matMul(qn, tf.transpose(kn)), temperature) as tf.Tensor2D;
  const target = tf.eye(q.shape[0]) as tf.Tensor2D;
  return tf.mul(softmaxCrossEntropy(logits, target), 2 * temperature) as tf.Scalar;
}

function maskedByOps(p: tf.Tensor, t: tf.Tensor, m4: tf.Tensor, type: "l1" | "l2"): tf.Scalar {
  const d = tf.sub(p, t);
  const e = type === "l1" ? tf.abs(d) : tf.square(d);
  const n = m4.shape[3] === 1 ? tf.mul(tf.sum(m4), p.shape[3] as number) : tf.sum(m4);
  return tf.div(tf.sum(tf.mul(e, m4)), tf.maximum(n, 1e-12)) as tf.Scalar;
}

/** ⟨∇f(x), u⟩ against (f(x + hu) − f(x − hu)) / 2h for a random direction u. */
function directional(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, seed: number, h = 1e-2) {
  const u = tf.randomNormal(x.shape, 0, 1, "float32", seed);
  const g = tf.grad(f)(x);
  const analytic = tf.sum(tf.mul(g, u)).dataSync()[0];
  const at = (s: number) => tf.tidy(() => f(tf.add(x, tf.mul(u, s))).dataSync()[0]);
  const numeric = (at(h) - at(-h)) / (2 * h);
  tf.dispose([u, g]);
  return { analytic, numeric };
}

describe("hand-written loss gradients", () => {
  it("MoCo-v3: value and gradient equal autodiff's, including a zero row (ε), k gets none", () => {
    const q = tf.tensor2d(
      [
        ...Array.from(tf.randomNormal([5, 16], 0, 1, "float32", 1).dataSync()),
        ...new Array(16).fill(0),
      ],
      [6, 16],
    );
    const k = tf.randomNormal([6, 16], 0, 1, "float32", 2);
    const dy = tf.scalar(1.7);
    for (const temperature of [0.2, 1]) {
      const ours = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
        mocoV3Loss(a, b, { temperature }),
      )([q, k], dy);
      const ref = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => mocoByOps(a, b, temperature))(
        [q, k],
        dy,
      );
      expectClose(ours.value, ref.value, 1e-6, `value τ ${temperature}`, 1e-6);
      expectClose(ours.grads[0], ref.grads[0], 1e-5, `dq τ ${temperature}`, 1e-6);
      expect(Math.max(...ours.grads[1].abs().dataSync())).toBe(0);
      tf.dispose([ours.value, ref.value, ...ours.grads, ...ref.grads]);
    }
    tf.dispose([q, k, dy]);
  });

  it("MoCo-v3: gradient agrees with central differences", () => {
    const q = tf.randomNormal([4, 8], 0, 1, "float32", 3);
    const k = tf.randomNormal([4, 8], 0, 1, "float32", 4);
    for (const seed of [5, 6]) {
      const { analytic, numeric } = directional((a) => mocoV3Loss(a, k), q, seed);
      expect(Math.abs(analytic - numeric)).toBeLessThan(2e-3 * Math.max(1, Math.abs(numeric)));
    }
    tf.dispose([q, k]);
  });

  it.each([
    ["l1", [2, 4, 5]],
    ["l1", [2, 4, 5, 1]],
    ["l2", [2, 4, 5, 3]],
  ] as ["l1" | "l2", number[]][])(
    "masked %s with a mask %j: value and both gradients equal autodiff's",
    (type, maskShape) => {
      const p = tf.randomNormal([2, 4, 5, 3], 0, 1, "float32", 7);
      const t = tf.randomNormal([2, 4, 5, 3], 0, 1, "float32", 8);
      const mask = tf.cast(
        tf.greater(tf.randomUniform(maskShape, 0, 1, "float32", 9), 0.4),
        "float32",
      );
      const m4 = maskShape.length === 3 ? tf.expandDims(mask, 3) : mask;
      const dy = tf.scalar(0.6);
      const ours = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
        maskedReconstructionLoss(a, b, mask, { type }),
      )([p, t], dy);
      const ref = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => maskedByOps(a, b, m4, type))(
        [p, t],
        dy,
      );
      expectClose(ours.value, ref.value, 1e-6, "value", 1e-7);
      expectClose(ours.grads[0], ref.grads[0], 1e-6, "d pred", 1e-7);
      expectClose(ours.grads[1], ref.grads[1], 1e-6, "d target", 1e-7);
      if (type === "l2") {
        const { analytic, numeric } = directional(
          (a) => maskedReconstructionLoss(a, t, mask, { type }),
          p,
          10,
        );
        expect(Math.abs(analytic - numeric)).toBeLessThan(2e-3 * Math.max(1, Math.abs(numeric)));
      }
      tf.dispose([p, t, mask, m4, dy, ours.value, ref.value, ...ours.grads, ...ref.grads]);
    },
  );
});
