import * as tf from "@tensorflow/tfjs";
import { Rng, ShapeError, toTorchStateDict } from "@sit/core";
import {
  TEST_BACKENDS,
  expectClose,
  gradientToTorch,
  loadFixture,
  loadFromTorch,
  withBackend,
} from "@sit/testing";
import { VisionTransformer } from "@sit/vit";
import { afterAll, describe, expect, it } from "vitest";
import { SitReconstructionHead } from "./sit-reconstruction-head";

// rec_head.safetensors: SiT's RECHead (D 48, patch 4, 3 channels) in PyTorch, patch tokens → NCHW image.
const rec = loadFixture("rec_head.safetensors");
// sit_step.safetensors: one SiT step of a tiny model; its student carries a RECHead as `rec_head.*`.
const step = loadFixture("sit_step.safetensors");
afterAll(() => tf.dispose([...Object.values(rec.tensors), ...Object.values(step.tensors)]));

// The fixture's `grad.rec_head.*` are λ·∂Lr/∂θ (the contrastive term does not reach the head).
// An earlier copy had them wrong upstream of the head's last GELU (~1e23): Debian's float32
// PyTorch 1.13 gelu_backward returns wrong values for a non-contiguous incoming gradient, which
// is what conv_transpose2d hands back; the regenerated fixture agrees with float64 (see
// packages/testing/fixtures/README.md).

const REC_NAMES = Object.keys(rec.tensors).filter((k) => !/^(input|output)\./.test(k));
const toNhwc = (x: tf.Tensor) => tf.transpose(x, [0, 2, 3, 1]);

function recHead(): SitReconstructionHead {
  const c = rec.metadata.config as Record<string, number>;
  return new SitReconstructionHead({
    embedDim: c.dim,
    patchSize: c.patch,
    outChans: c.chans,
    rng: Rng.seed(0),
  });
}

describe.each(TEST_BACKENDS)("SitReconstructionHead parity with PyTorch on %s", (backend) => {
  it("maps rec_head.safetensors' patch tokens to its image (ConvTranspose2d bias included)", async () => {
    await withBackend(backend, () => {
      const head = recHead();
      loadFromTorch(head, rec.tensors);
      const image = head.apply(rec.tensors["input.patch_tokens"]);
      const expected = toNhwc(rec.tensors["output.image"]);
      expect(image.shape).toEqual([4, 32, 32, 3]);
      expectClose(image, expected, 1e-5, "output.image");
      tf.dispose([image, expected]);
      head.dispose();
    });
  });

  it("reproduces the SiT step's reconstruction from the student backbone, and λ·∂Lr/∂θ of the head", async () => {
    await withBackend(backend, () => {
      const t = step.tensors;
      const c = step.metadata.config as Record<string, number>;
      const lambda = (step.metadata.hyper as Record<string, number>).lam;
      const vit = new VisionTransformer({
        imgSize: c.img,
        patchSize: c.patch,
        embedDim: c.dim,
        depth: c.depth,
        numHeads: c.heads,
        rng: Rng.seed(1),
      });
      const head = new SitReconstructionHead({
        embedDim: c.dim,
        patchSize: c.patch,
        rng: Rng.seed(2),
      });
      loadFromTorch(vit, t, "student.");
      loadFromTorch(head, t, "student.rec_head.");
      const corrupted = toNhwc(tf.concat([t.c1, t.c2], 0));
      const clean = toNhwc(tf.concat([t.x1, t.x2], 0));
      const mask = toNhwc(tf.concat([t.m1, t.m2], 0)); // [2B, H, W, 1], broadcast over channels
      const recon = () => head.apply(vit.forward(corrupted).patchTokens);
      const r = recon();
      const expected = toNhwc(t["out.reconstruction"]);
      expectClose(r, expected, 1e-5, "out.reconstruction");
      // Lr = Σ|r − x|·m / Σm over all channels (the fixture's metadata); the head only sees λ·Lr.
      const maskSum = tf.mul(tf.sum(mask), 3);
      const headParams = head.namedParameters();
      const { grads } = tf.variableGrads(
        () =>
          tf.mul(
            tf.div(tf.sum(tf.mul(tf.abs(tf.sub(recon(), clean)), mask)), maskSum),
            lambda,
          ) as tf.Scalar,
        headParams.map(([, p]) => p),
      );
      expect(headParams.length).toBe(8);
      for (const [name, p] of headParams) {
        const ours = gradientToTorch(head, name, grads[p.name]);
        expectClose(ours, t[`grad.rec_head.${name}`], 1e-4, `grad.rec_head.${name}`);
        ours.dispose();
      }
      tf.dispose([corrupted, clean, mask, r, expected, maskSum, ...Object.values(grads)]);
      vit.dispose();
      head.dispose();
    });
  });
});

describe("SitReconstructionHead state dict and inputs", () => {
  it("has SiT's RECHead names (rec_head.safetensors, and sit_step's rec_head.* prefix) and round-trips", () => {
    const head = recHead();
    expect(Object.keys(head.stateDict())).toEqual(REC_NAMES);
    const stepNames = Object.keys(step.tensors)
      .filter((k) => k.startsWith("student.rec_head."))
      .map((k) => k.slice("student.rec_head.".length));
    expect(stepNames).toEqual(REC_NAMES);
    loadFromTorch(head, rec.tensors);
    const exported = toTorchStateDict(head);
    for (const name of REC_NAMES)
      expect(Array.from(exported[name].dataSync()), name).toEqual(
        Array.from(rec.tensors[name].dataSync()),
      );
    tf.dispose(Object.values(exported));
    head.dispose();
  });

  it("rejects mis-shaped tokens and grids", () => {
    const head = new SitReconstructionHead({ embedDim: 8, patchSize: 2, rng: Rng.seed(3) });
    expect(() => head.apply(tf.zeros([1, 4, 6]))).toThrow(ShapeError);
    expect(() => head.apply(tf.zeros([1, 4, 6]))).toThrow(/patchTokens: expected \[B, N, 8\]/);
    expect(() => head.apply(tf.zeros([1, 6, 8]))).toThrow(/rows·cols = 6/);
    const ok = head.apply(tf.zeros([2, 6, 8]), [2, 3]);
    expect(ok.shape).toEqual([2, 4, 6, 3]);
    expect(
      () => new SitReconstructionHead({ embedDim: 8, patchSize: 0, rng: Rng.seed(0) }),
    ).toThrow(/patchSize/);
    tf.dispose(ok);
    head.dispose();
  });

  it("leaks no tensors in forward + backward", () => {
    const head = new SitReconstructionHead({ embedDim: 8, patchSize: 2, rng: Rng.seed(4) });
    const tokens = tf.randomNormal([2, 4, 8], 0, 1, "float32", 1);
    const stepFn = () =>
      tf.tidy(
        () => tf.variableGrads(() => tf.mean(tf.square(head.apply(tokens))) as tf.Scalar).value,
      );
    stepFn().dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) stepFn().dispose();
    expect(tf.memory().numTensors).toBe(before);
    tokens.dispose();
    head.dispose();
  });
});
