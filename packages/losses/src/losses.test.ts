import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError } from "@sit/core";
import { TEST_BACKENDS, expectClose, loadFixture, withBackend } from "@sit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  maskedReconstructionLoss,
  mocoV3Loss,
  ntXentLoss,
  sitContrastiveLoss,
  sitContrastiveLossOfViews,
} from "./index";

// PyTorch reference: NCHW images, mask repeated on the channels; converted to NHWC here.
let fx: Record<string, tf.Tensor>;
let nhwc: { pred: tf.Tensor4D; target: tf.Tensor4D; mask: tf.Tensor3D; gradPred: tf.Tensor4D };

beforeAll(() => {
  fx = loadFixture("losses.safetensors").tensors;
  const toNhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;
  const mask4 = toNhwc(fx["recon.mask"]);
  nhwc = {
    pred: toNhwc(fx["recon.pred"]),
    target: toNhwc(fx["recon.target"]),
    // The fixture's mask is per pixel, repeated on the channels: keep one channel.
    mask: tf.squeeze(tf.slice(mask4, [0, 0, 0, 0], [-1, -1, -1, 1]), [3]) as tf.Tensor3D,
    gradPred: toNhwc(fx["recon.l1.grad.pred"]),
  };
  mask4.dispose();
});

afterAll(() => {
  for (const t of Object.values(fx)) t.dispose();
  for (const t of Object.values(nhwc)) t.dispose();
});

function scalarOf(t: tf.Tensor): number {
  return t.dataSync()[0];
}

describe.each(TEST_BACKENDS)("losses against PyTorch on %s", (backend) => {
  it("MoCo-v3 (SiT form, both pairings): value and student gradients", async () => {
    await withBackend(backend, () => {
      const [s1, s2, t1, t2] = ["s1", "s2", "t1", "t2"].map((k) =>
        tf.tensor(fx[`moco.${k}`].dataSync(), fx[`moco.${k}`].shape),
      );
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
        sitContrastiveLoss(a, b, c, d);
      const { value, grads } = tf.valueAndGrads(f)([s1, s2, t1, t2]);
      expectClose(value, fx["moco.loss"].dataSync(), 1e-5, "moco loss");
      expectClose(grads[0], fx["moco.grad.s1"], 1e-4, "grad s1");
      expectClose(grads[1], fx["moco.grad.s2"], 1e-4, "grad s2");
      // The teacher keys are detached.
      expect(Math.max(...grads[2].abs().dataSync()), "no gradient into t1").toBe(0);
      expect(Math.max(...grads[3].abs().dataSync()), "no gradient into t2").toBe(0);
      tf.dispose([s1, s2, t1, t2, value, ...grads]);
    });
  });

  it("MoCo-v3 of both views stacked ([s1; s2] against [t1; t2]): value and student gradients", async () => {
    await withBackend(backend, () => {
      const [s1, s2, t1, t2] = ["s1", "s2", "t1", "t2"].map((k) =>
        tf.tensor(fx[`moco.${k}`].dataSync(), fx[`moco.${k}`].shape),
      );
      const [s, t] = [tf.concat([s1, s2], 0), tf.concat([t1, t2], 0)];
      const f = (a: tf.Tensor, b: tf.Tensor) => sitContrastiveLossOfViews(a, b);
      const { value, grads } = tf.valueAndGrads(f)([s, t]);
      expectClose(value, fx["moco.loss"].dataSync(), 1e-5, "moco loss");
      const b = s1.shape[0];
      expectClose(grads[0].slice(0, b), fx["moco.grad.s1"], 1e-4, "grad s1");
      expectClose(grads[0].slice(b, b), fx["moco.grad.s2"], 1e-4, "grad s2");
      expect(Math.max(...grads[1].abs().dataSync()), "no gradient into t").toBe(0);
      expect(() => sitContrastiveLossOfViews(s.slice(1), t.slice(1))).toThrow(
        /s: expected an even number of rows/,
      );
      tf.dispose([s1, s2, t1, t2, s, t, value, ...grads]);
    });
  });

  it("NT-Xent (τ 0.5): value and gradients", async () => {
    await withBackend(backend, () => {
      const z1 = tf.tensor(fx["ntxent.z1"].dataSync(), fx["ntxent.z1"].shape);
      const z2 = tf.tensor(fx["ntxent.z2"].dataSync(), fx["ntxent.z2"].shape);
      const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => ntXentLoss(a, b))([
        z1,
        z2,
      ]);
      expectClose(value, fx["ntxent.loss"].dataSync(), 1e-5, "ntxent loss");
      expectClose(grads[0], fx["ntxent.grad.z1"], 1e-4, "grad z1");
      expectClose(grads[1], fx["ntxent.grad.z2"], 1e-4, "grad z2");
      tf.dispose([z1, z2, value, ...grads]);
    });
  });

  it("masked L1 / L2 reconstruction: values and the L1 gradient", async () => {
    await withBackend(backend, () => {
      const pred = tf.tensor(nhwc.pred.dataSync(), nhwc.pred.shape);
      const target = tf.tensor(nhwc.target.dataSync(), nhwc.target.shape);
      const mask = tf.tensor(nhwc.mask.dataSync(), nhwc.mask.shape);
      const { value, grad } = tf.valueAndGrad((p: tf.Tensor) =>
        maskedReconstructionLoss(p, target, mask),
      )(pred);
      expectClose(value, fx["recon.l1"].dataSync(), 1e-5, "l1");
      expectClose(grad, nhwc.gradPred, 1e-4, "l1 grad");
      const l2 = maskedReconstructionLoss(pred, target, mask, { type: "l2" });
      expectClose(l2, fx["recon.l2"].dataSync(), 1e-5, "l2");
      // [B, H, W, 1] and [B, H, W, C] masks give the same value.
      const m1 = tf.expandDims(mask, 3);
      const mc = tf.tile(m1, [1, 1, 1, 3]);
      expectClose(
        maskedReconstructionLoss(pred, target, m1),
        fx["recon.l1"].dataSync(),
        1e-5,
        "l1 [B,H,W,1]",
      );
      expectClose(
        maskedReconstructionLoss(pred, target, mc),
        fx["recon.l1"].dataSync(),
        1e-5,
        "l1 [B,H,W,C]",
      );
      tf.dispose([pred, target, mask, value, grad, l2, m1, mc]);
    });
  });
});

describe("masked reconstruction: reductions and edge cases", () => {
  it("'all' is the mean over every element; 'masked' of a full mask equals it", () => {
    const pred = tf.tensor4d([1, -2, 3, 0.5], [1, 2, 2, 1]);
    const target = tf.zeros([1, 2, 2, 1]);
    // |d| = 1, 2, 3, 0.5 → mean 1.625; squares 1, 4, 9, 0.25 → mean 3.5625.
    expect(
      scalarOf(maskedReconstructionLoss(pred, target, null, { reduction: "all" })),
    ).toBeCloseTo(1.625, 6);
    expect(
      scalarOf(maskedReconstructionLoss(pred, target, null, { reduction: "all", type: "l2" })),
    ).toBeCloseTo(3.5625, 6);
    expect(scalarOf(maskedReconstructionLoss(pred, target, tf.ones([1, 2, 2])))).toBeCloseTo(
      1.625,
      6,
    );
    // Only the two masked pixels count: (2 + 0.5) / 2.
    expect(
      scalarOf(maskedReconstructionLoss(pred, target, tf.tensor3d([0, 1, 0, 1], [1, 2, 2]))),
    ).toBeCloseTo(1.25, 6);
    // Empty mask: 0, not NaN.
    expect(scalarOf(maskedReconstructionLoss(pred, target, tf.zeros([1, 2, 2])))).toBe(0);
  });

  it("pools over the batch (not a mean of per-image means)", () => {
    // Image 0: one masked pixel with error 1; image 1: three masked pixels with error 3.
    const pred = tf.tensor4d([1, 0, 0, 0, 3, 3, 3, 0], [2, 2, 2, 1]);
    const target = tf.zeros([2, 2, 2, 1]);
    const mask = tf.tensor3d([1, 0, 0, 0, 1, 1, 1, 0], [2, 2, 2]);
    expect(scalarOf(maskedReconstructionLoss(pred, target, mask))).toBeCloseTo(10 / 4, 6);
  });

  it("rejects bad input with clear errors", () => {
    const x = tf.zeros([1, 4, 4, 3]);
    expect(() => maskedReconstructionLoss(x, tf.zeros([1, 4, 4, 1]), tf.ones([1, 4, 4]))).toThrow(
      ShapeError,
    );
    expect(() => maskedReconstructionLoss(x, x, tf.ones([1, 4, 5]))).toThrow(
      /mask: expected shape/,
    );
    expect(() => maskedReconstructionLoss(x, x, null)).toThrow(/mask: expected a tensor/);
    expect(() =>
      maskedReconstructionLoss(x, x, tf.ones([1, 4, 4]), { type: "l3" as "l1" }),
    ).toThrow(ConfigError);
    expect(() => maskedReconstructionLoss(tf.zeros([4, 4, 3]), x, null)).toThrow(
      /pred: expected a tensor of rank 4/,
    );
    expect(() => mocoV3Loss(tf.zeros([4, 8]), tf.zeros([4, 9]))).toThrow(
      /k: expected the shape of q/,
    );
    expect(() => mocoV3Loss(tf.zeros([4, 8]), tf.zeros([4, 8]), { temperature: 0 })).toThrow(
      /temperature/,
    );
    expect(() => ntXentLoss(tf.zeros([4]), tf.zeros([4]))).toThrow(
      /z1: expected a tensor of rank 2/,
    );
  });

  it("a zero embedding stays finite in value and gradient (ε in the normalisation)", () => {
    const q = tf.tensor2d([0, 0, 0, 1, 2, 3], [2, 3]);
    const k = tf.tensor2d([1, 0, 0, 0, 1, 0], [2, 3]);
    const { value, grad } = tf.valueAndGrad((a: tf.Tensor) => mocoV3Loss(a, k))(q);
    expect(Number.isFinite(scalarOf(value))).toBe(true);
    expect(Array.from(grad.dataSync()).every(Number.isFinite)).toBe(true);
    // Large logits (τ tiny) do not overflow: the row maximum is subtracted.
    const big = mocoV3Loss(tf.tensor2d([1, 0, 0, 1], [2, 2]), tf.tensor2d([0, 1, 1, 0], [2, 2]), {
      temperature: 1e-3,
    });
    expect(Number.isFinite(scalarOf(big))).toBe(true);
  });
});

describe("no tensor leaks", () => {
  it.each(TEST_BACKENDS)(
    "losses and their gradients leave the tensor count unchanged on %s",
    async (backend) => {
      await withBackend(backend, () => {
        const s1 = tf.randomNormal([6, 8], 0, 1, "float32", 1);
        const s2 = tf.randomNormal([6, 8], 0, 1, "float32", 2);
        const t1 = tf.randomNormal([6, 8], 0, 1, "float32", 3);
        const t2 = tf.randomNormal([6, 8], 0, 1, "float32", 4);
        const img = tf.randomNormal([2, 4, 4, 3], 0, 1, "float32", 5);
        const tgt = tf.randomNormal([2, 4, 4, 3], 0, 1, "float32", 6);
        const mask = tf.ones([2, 4, 4]);
        const step = () => {
          const g1 = tf.grads((a: tf.Tensor, b: tf.Tensor) => sitContrastiveLoss(a, b, t1, t2))([
            s1,
            s2,
          ]);
          const g2 = tf.grads((a: tf.Tensor, b: tf.Tensor) => ntXentLoss(a, b))([s1, s2]);
          const g3 = tf.grad((p: tf.Tensor) => maskedReconstructionLoss(p, tgt, mask))(img);
          const g4 = tf.grad((p: tf.Tensor) =>
            maskedReconstructionLoss(p, tgt, null, { reduction: "all", type: "l2" }),
          )(img);
          tf.dispose([...g1, ...g2, g3, g4]);
          tf.dispose([
            mocoV3Loss(s1, t1),
            ntXentLoss(s1, s2),
            maskedReconstructionLoss(img, tgt, mask),
          ]);
        };
        step();
        const before = tf.memory().numTensors;
        for (let i = 0; i < 3; i++) step();
        expect(tf.memory().numTensors).toBe(before);
        tf.dispose([s1, s2, t1, t2, img, tgt, mask]);
      });
    },
  );
});
