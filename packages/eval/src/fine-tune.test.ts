import * as tf from "@tensorflow/tfjs";
import { Rng, ShapeError } from "@sit/core";
import { ArrayDataset, type MixupOptions } from "@sit/data";
import { LinearClassifier, VisionTransformer } from "@sit/vit";
import { withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { evaluateClassifier, fineTune } from "./fine-tune";
import { layerDecayGroups, vitLayerId } from "./layer-decay";

/**
 * 8×8 RGB images of 4 classes by colour: red-, green-, blue-dominant or grey (channel means 0.7
 * vs 0.3, grey 0.5), with per-pixel noise σ 0.15. Linearly separable in the mean colour.
 */
function colours(n: number, seed: number): ArrayDataset {
  const rng = Rng.seed(seed);
  const images = new Uint8Array(n * 8 * 8 * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 4;
    labels[i] = c;
    for (let p = 0; p < 64; p++)
      for (let k = 0; k < 3; k++) {
        const v = (c === 3 ? 0.5 : k === c ? 0.7 : 0.3) + rng.normal(0, 0.15);
        images[(i * 64 + p) * 3 + k] = Math.round(255 * Math.min(1, Math.max(0, v)));
      }
  }
  return new ArrayDataset(images, 8, 8, 3, labels);
}

const tinyVit = (seed: number, dropPathRate = 0.1) =>
  new VisionTransformer({
    imgSize: 8,
    patchSize: 4,
    embedDim: 16,
    depth: 2,
    numHeads: 2,
    dropPathRate,
    rng: Rng.seed(seed),
  });

describe("fineTune", () => {
  it("reaches ≥ 95% on a separable image set (tiny ViT, DeiT-style recipe), without leaking tensors", async () => {
    const train = colours(256, 1);
    const test = colours(64, 2);
    const model = tinyVit(3);
    const seen: number[] = [];
    const tensorsAfterEpoch: number[] = [];
    const r = await fineTune(model, train, test, {
      epochs: 6,
      batchSize: 16,
      lr: 5e-3,
      warmupEpochs: 1,
      layerDecay: 0.75,
      mixup: { prob: 0.5 },
      randAugment: {
        numOps: 1,
        magnitude: 5,
        ops: ["Brightness", "Contrast", "Posterize", "Rotate", "ShearX"],
      },
      normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
      seed: 4,
      onEpoch: (e) => {
        seen.push(e.epoch);
        tensorsAfterEpoch.push(tf.memory().numTensors);
      },
    });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.last.top1).toBeGreaterThanOrEqual(0.95);
    expect(r.epochs[5].trainLoss).toBeLessThan(r.epochs[0].trainLoss);
    // Warm-up over epoch 1 (16 steps from 1e-6): its last step (15) is at 15/16 of the way; then
    // the cosine ends near minLr.
    expect(r.epochs[0].lr).toBeCloseTo(1e-6 + ((5e-3 - 1e-6) * 15) / 16, 12);
    expect(r.epochs[5].lr).toBeLessThan(1e-4);
    // The reported accuracy is that of the returned model + head.
    const ev = await evaluateClassifier(model, r.head, test, {
      transform: (x) => tf.div(tf.sub(x, 0.5), 0.25) as tf.Tensor4D,
    });
    expect(ev.top1).toBe(r.last.top1);
    // No tensor accumulates from one epoch to the next (training steps and evaluation are leak-free).
    expect(new Set(tensorsAfterEpoch.slice(1)).size).toBe(1);
    r.head.dispose();
    model.dispose();
  });

  it("learns on wasm: a fresh head's loss starts near ln 4 and the separable set is learnt", async () => {
    // tfjs-backend-wasm's OneHot once made every target ~0 there: trainLoss 0, chance accuracy.
    await withBackend("wasm", async () => {
      const model = tinyVit(3, 0);
      const r = await fineTune(model, colours(128, 1), colours(64, 2), {
        epochs: 4,
        batchSize: 16,
        lr: 5e-3,
        warmupEpochs: 0,
        normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
        seed: 4,
      });
      expect(r.epochs[0].trainLoss).toBeGreaterThan(0.5);
      expect(r.epochs[0].trainLoss).toBeLessThan(2);
      // Chance is 0.25.
      expect(r.last.top1).toBeGreaterThanOrEqual(0.85);
      r.head.dispose();
      model.dispose();
    });
  });

  it("applies Mixup and CutMix to the images the model sees (and nothing without them)", async () => {
    // Two classes of constant images, 0 (black) and 1 (white): an unmixed batch holds only 0s
    // and 1s; mixup blends whole images (values strictly between); CutMix pastes a box (an image
    // with both 0 and 1).
    const n = 16;
    const images = new Uint8Array(n * 8 * 8).map((_, j) => (Math.floor(j / 64) % 2) * 255);
    const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
    const data = new ArrayDataset(images, 8, 8, 1, labels);
    const seenBy = async (mixup: MixupOptions | false) => {
      const model = new VisionTransformer({
        imgSize: 8,
        patchSize: 4,
        inChans: 1,
        embedDim: 8,
        depth: 1,
        numHeads: 1,
        rng: Rng.seed(1),
      });
      const seen = { blended: 0, boxed: 0, pure: 0 };
      const forward = model.forward.bind(model);
      model.forward = ((x: tf.Tensor4D, o?: Parameters<typeof forward>[1]) => {
        if (model.training) {
          const v = x.dataSync();
          for (let b = 0; b < x.shape[0]; b++) {
            const img = Array.from(v.subarray(b * 64, (b + 1) * 64));
            if (img.some((p) => p > 0.001 && p < 0.999)) seen.blended++;
            else if (img.includes(0) && img.includes(1)) seen.boxed++;
            else seen.pure++;
          }
        }
        return forward(x, o);
      }) as typeof model.forward;
      const r = await fineTune(model, data, data, { epochs: 2, batchSize: 8, mixup, seed: 2 });
      r.head.dispose();
      model.dispose();
      return seen;
    };
    expect(await seenBy(false)).toEqual({ blended: 0, boxed: 0, pure: 2 * n });
    const mix = await seenBy({ cutmixAlpha: 0 });
    expect(mix.blended).toBeGreaterThanOrEqual(n / 2);
    expect(mix.boxed).toBe(0);
    const cut = await seenBy({ mixupAlpha: 0 });
    expect(cut.boxed).toBeGreaterThan(n / 2);
    expect(cut.blended).toBe(0);
  });

  it("groups parameters for layer-wise lr decay by block index", () => {
    const model = tinyVit(1);
    const head = new LinearClassifier(16, 4, { rng: Rng.seed(2) });
    const named: [string, tf.Variable][] = [
      ...model.namedParameters(),
      ...head.namedParameters("head"),
    ];
    expect(vitLayerId("pos_embed", 2)).toBe(0);
    expect(vitLayerId("patch_embed.proj.weight", 2)).toBe(0);
    expect(vitLayerId("blocks.0.attn.qkv.weight", 2)).toBe(1);
    expect(vitLayerId("blocks.1.mlp.fc2.bias", 2)).toBe(2);
    expect(vitLayerId("norm.weight", 2)).toBe(3);
    expect(vitLayerId("head.linear.weight", 2)).toBe(3);
    const groups = layerDecayGroups(named, { depth: 2, layerDecay: 0.5, weightDecay: 0.05 });
    const find = (param: string) => groups.find((g) => g.params.some(([n]) => n === param))!;
    expect(find("head.linear.weight").lrScale).toBe(1);
    expect(find("head.linear.weight").weightDecay).toBe(0.05);
    expect(find("head.linear.bias").weightDecay).toBe(0);
    expect(find("blocks.1.attn.qkv.weight").lrScale).toBe(0.5);
    expect(find("blocks.0.attn.qkv.weight").lrScale).toBe(0.25);
    expect(find("patch_embed.proj.weight").lrScale).toBe(0.125);
    expect(find("cls_token").weightDecay).toBe(0); // timm's no_weight_decay for ViTs
    expect(find("pos_embed").weightDecay).toBe(0);
    expect(groups.reduce((s, g) => s + g.params.length, 0)).toBe(named.length);
    model.dispose();
    head.dispose();
  });

  it("refuses an unlabeled dataset and a head made for another backbone", async () => {
    const model = tinyVit(1);
    const train = colours(8, 1);
    const unlabeled = new ArrayDataset(train.images, 8, 8, 3);
    await expect(fineTune(model, unlabeled, train, { epochs: 1, seed: 1 })).rejects.toThrow(
      /trainData: expected a labelled dataset/,
    );
    await expect(fineTune(model, train, unlabeled, { epochs: 1, seed: 1 })).rejects.toThrow(
      /testData/,
    );
    const head = new LinearClassifier(32, 4, { rng: Rng.seed(2) });
    await expect(fineTune(model, train, train, { epochs: 1, seed: 1, head })).rejects.toThrow(
      ShapeError,
    );
    await expect(fineTune(model, train, train, { epochs: 1, seed: 1, head })).rejects.toThrow(
      /expects 32-dimensional features, but the backbone gives 16/,
    );
    await expect(evaluateClassifier(model, head, train)).rejects.toThrow(/expects 32-dimensional/);
    head.dispose();
    model.dispose();
  });
});
