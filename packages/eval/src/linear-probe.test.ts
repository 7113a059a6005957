import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { Rng, ShapeError } from "@sit/core";
import { withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import type { FeatureSet } from "./feature-set";
import { loadLinearHead, saveLinearHead } from "./linear-head-files";
import { type LinearProbeOptions, linearProbe } from "./linear-probe";
import { topKAccuracy } from "./metrics";

/**
 * Linearly separable data: class c = sign pattern of the first log2(C) coordinates, shifted
 * away from 0 by a margin, plus distractor dimensions, all scaled very differently.
 */
function separable(n: number, dim: number, seed: number): FeatureSet {
  const rng = Rng.seed(seed);
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = rng.int(0, 4);
    labels[i] = c;
    for (let j = 0; j < dim; j++) features[i * dim + j] = rng.normal(0, 1) * (1 + j);
    // Two informative coordinates: sign bits of the class, |value| ≥ 0.5.
    features[i * dim] = (c & 1 ? 1 : -1) * (0.5 + rng.float());
    features[i * dim + 1] = (c & 2 ? 1 : -1) * (0.5 + rng.float()) + 3; // offset: needs the bias
  }
  return { features, labels, dim };
}

describe("linearProbe", () => {
  const train = separable(600, 12, 1);
  const test = separable(300, 12, 2);

  it("reaches ≥ 95% on linearly separable data with SGD-momentum, AdamW and BN-no-affine", () => {
    for (const opts of [
      { optimizer: "sgd" as const, lr: 0.05 },
      { optimizer: "adamw" as const, lr: 0.02, weightDecay: 1e-4 },
      { optimizer: "sgd" as const, lr: 0.5, batchNormNoAffine: true, warmupEpochs: 1 },
    ]) {
      const r = linearProbe(train, test, { epochs: 15, batchSize: 64, seed: 3, ...opts });
      expect(r.epochs).toHaveLength(15);
      expect(r.last.top1).toBeGreaterThanOrEqual(0.95);
      expect(r.epochs[14].trainLoss).toBeLessThan(r.epochs[0].trainLoss);
      // The returned head is the last epoch's: its predictions give the reported accuracy.
      const scores = r.head.predict(test.features, test.dim);
      expect(topKAccuracy(scores, test.labels, 1, 4)).toBe(r.last.top1);
      expect(r.bestTest.top1).toBeGreaterThanOrEqual(r.last.top1);
      r.head.dispose();
    }
  });

  it("learns on wasm too (its OneHot kernel once turned every target into ~0: loss 0, chance accuracy)", async () => {
    await withBackend("wasm", () => {
      const r = linearProbe(train, test, { epochs: 15, batchSize: 64, seed: 3, lr: 0.05 });
      // A fresh head on 4 classes starts near ln 4 ≈ 1.39.
      expect(r.epochs[0].trainLoss).toBeGreaterThan(0.3);
      expect(r.last.top1).toBeGreaterThanOrEqual(0.95);
      r.head.dispose();
    });
  });

  it("leaks no tensors (the count does not grow with the number of steps)", () => {
    const leak = (opts: Partial<LinearProbeOptions>, epochs: number) => {
      const before = tf.memory().numTensors;
      linearProbe(train, test, { epochs, batchSize: 100, seed: 1, ...opts }).head.dispose();
      return tf.memory().numTensors - before;
    };
    expect(leak({ optimizer: "sgd" }, 2)).toBe(0);
    expect(leak({ optimizer: "sgd", batchNormNoAffine: true, validation: test }, 2)).toBe(0);
    // AdamW: whatever @sit/core's optimiser keeps after dispose, nothing accumulates per step.
    expect(leak({ optimizer: "adamw" }, 4)).toBe(leak({ optimizer: "adamw" }, 1));
  });

  it("selects the epoch by validation accuracy only, and returns that epoch's head", () => {
    const val = separable(200, 12, 9);
    const seen: number[] = [];
    const r = linearProbe(train, test, {
      epochs: 6,
      lr: 0.3,
      batchSize: 128,
      seed: 4,
      validation: val,
      onEpoch: (e) => seen.push(e.epoch),
    });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    const vals = r.epochs.map((e) => e.valTop1!);
    const bestVal = Math.max(...vals);
    const epoch = vals.indexOf(bestVal) + 1; // first epoch reaching the best validation accuracy
    expect(r.selected!.epoch).toBe(epoch);
    expect(r.selected!.top1).toBe(r.epochs[epoch - 1].testTop1);
    const scores = r.head.predict(test.features, test.dim);
    expect(topKAccuracy(scores, test.labels, 1, 4)).toBe(r.selected!.top1);
    r.head.dispose();
  });

  it("refuses unlabeled data and a saved head whose input size does not match the backbone", () => {
    const unlabeled = { ...test, labels: new Int32Array(test.labels.length).fill(-1) };
    expect(() => linearProbe(train, unlabeled, { epochs: 1, seed: 1 })).toThrow(
      /test.labels\[0\].*unlabeled/,
    );
    expect(() => linearProbe(unlabeled, test, { epochs: 1, seed: 1 })).toThrow(/train.labels\[0\]/);
    const r = linearProbe(train, test, { epochs: 1, seed: 1, batchNormNoAffine: true });
    const dir = mkdtempSync(join(tmpdir(), "sit-eval-head-"));
    try {
      const path = join(dir, "head.safetensors");
      saveLinearHead(path, r.head);
      const loaded = loadLinearHead(path, { rng: Rng.seed(0), expectedInFeatures: 12 });
      expect(Array.from(loaded.predict(test.features, 12))).toEqual(
        Array.from(r.head.predict(test.features, 12)),
      );
      expect(() => loadLinearHead(path, { rng: Rng.seed(0), expectedInFeatures: 384 })).toThrow(
        /expects 12-dimensional features, but the backbone gives 384/,
      );
      expect(() => loaded.predict(new Float32Array(384 * 2), 384)).toThrow(ShapeError);
      loaded.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      r.head.dispose();
    }
  });
});
