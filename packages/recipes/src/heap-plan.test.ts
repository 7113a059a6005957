import * as tf from "@tensorflow/tfjs";
import { withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { heapEstimate, measureStepBytes, planWasmHeap, stepBytesAt } from "./heap-plan";
import { createSiT } from "./sit";

// A small SiT (depth 4, so that recomputing blocks saves memory that can be seen).
function probe(batchSize = 4, withDepth = true) {
  const recipe = createSiT({
    backbone: { imgSize: 16, patchSize: 4, embedDim: 32, depth: 4, numHeads: 2, inChans: 1 },
    projection: { hidden: 64, outDim: 16 },
    optim: { batchSize, epochs: 2, stepsPerEpoch: 2 },
  });
  return Object.assign(recipe, {
    imageShape: [16, 16, 1] as [number, number, number],
    ...(withDepth ? { depth: recipe.student.backbone.depth } : {}),
    setCheckpointBlocks: (on: boolean) => {
      recipe.student.backbone.checkpointBlocks = on;
    },
  });
}

async function measuredPeak(batch: number, checkpointBlocks: boolean | number): Promise<number> {
  const start = tf.memory().numBytes;
  const r = probe(batch);
  r.student.backbone.checkpointBlocks = checkpointBlocks;
  const views = [0, 1].map(
    (i) => tf.randomNormal([batch, 16, 16, 1], 0, 1, "float32", i) as tf.Tensor4D,
  );
  await r.trainStep({ views }, 0);
  const info = await tf.profile(async () => {
    await r.trainStep({ views }, 1);
    return [];
  });
  const peak = info.peakBytes - start - 2 * batch * 16 * 16 * 4;
  tf.dispose(views);
  r.dispose();
  return peak;
}

describe("wasm heap planning", () => {
  it("extrapolates a step's peak bytes from two small batches (with and without recomputation)", async () => {
    await withBackend("wasm", async () => {
      const n0 = tf.memory().numTensors;
      const { plain, recompute } = await measureStepBytes(() => probe());
      expect(tf.memory().numTensors).toBe(n0); // the probe recipe and batches are released
      // Activations grow with the batch; recomputation keeps only block inputs, so less per image.
      expect(plain.perImage).toBeGreaterThan(0);
      expect(recompute.perImage).toBeLessThan(plain.perImage);
      // 2 of 4 blocks recomputed: recomputing one saves nothing (it holds its activations again
      // during its backward), each further one a block's: 2/3 of the way from all to none.
      const between = (a: number, b: number) => b + ((a - b) * 2) / 3;
      const half = {
        fixed: between(plain.fixed, recompute.fixed),
        perImage: between(plain.perImage, recompute.perImage),
      };
      for (const [batch, on, s] of [
        [24, false, plain],
        [24, true, recompute],
        [24, 2, half],
      ] as const) {
        const actual = await measuredPeak(batch, on);
        const estimate = stepBytesAt(s, batch);
        expect(
          Math.abs(estimate - actual) / actual,
          `batch ${batch}, recompute ${on}`,
        ).toBeLessThan(0.1);
      }
    });
  });

  it("recomputes the fewest blocks that fit, and says when nothing fits", async () => {
    await withBackend("wasm", async () => {
      const roomy = await planWasmHeap({ create: () => probe(), batchSize: 32 });
      expect(roomy.fits).toBe(true);
      expect(roomy.checkpointBlocks).toBe(false);
      expect(roomy.recomputedBlocks).toBe(0);
      expect(roomy.depth).toBe(4);
      expect(roomy.estimate).toBe(roomy.withoutRecompute);
      expect(roomy.withRecompute).toBeLessThan(roomy.withoutRecompute);
      // A heap between the two estimates: some blocks, not all, and one fewer would not fit.
      const between = roomy.used + Math.round((roomy.withRecompute + roomy.withoutRecompute) / 2);
      const tight = await planWasmHeap({ create: () => probe(), batchSize: 32, limit: between });
      const free = between - tight.used;
      expect(tight.checkpointBlocks).toBe(true);
      expect(tight.recomputedBlocks).toBeGreaterThan(0);
      expect(tight.recomputedBlocks).toBeLessThan(4);
      expect(tight.fits).toBe(true);
      expect(tight.estimate).toBeLessThanOrEqual(free);
      expect(heapEstimate(tight, tight.recomputedBlocks - 1)).toBeGreaterThan(free);
      // Just above the all-blocks estimate: all four.
      const allBlocks = roomy.used + roomy.withRecompute + 1024;
      const all = await planWasmHeap({ create: () => probe(), batchSize: 32, limit: allBlocks });
      expect(all.recomputedBlocks).toBe(4);
      expect(all.fits).toBe(true);
      // A probe that does not tell its depth: all or nothing, as before.
      const blind = await planWasmHeap({
        create: () => probe(4, false),
        batchSize: 32,
        limit: between,
      });
      expect(blind.depth).toBeNull();
      expect([blind.checkpointBlocks, blind.recomputedBlocks]).toEqual([true, 1]);
      expect(blind.estimate).toBe(blind.withRecompute);
      // Below both: it does not fit, and the largest batch that would is smaller than asked.
      const small = roomy.used + Math.round(roomy.withRecompute / 2);
      const tooSmall = await planWasmHeap({ create: () => probe(), batchSize: 32, limit: small });
      expect(tooSmall.fits).toBe(false);
      expect(tooSmall.recomputedBlocks).toBe(4);
      expect(tooSmall.maxBatchWithRecompute).toBeLessThan(32);
    });
  });

  it("rejects a block count outside the plan's depth, naming it", () => {
    const plan = { withoutRecompute: 400, withRecompute: 100, depth: 4 };
    expect(heapEstimate(plan, 1)).toBe(400); // one recomputed block holds its activations again
    expect(heapEstimate(plan, 2)).toBe(300);
    expect(heapEstimate(plan, 4)).toBe(100);
    expect(() => heapEstimate(plan, 5)).toThrow(
      /k: expected a whole number of blocks from 0 to 4, got 5/,
    );
  });

  it("rejects a bad batch size, naming it", async () => {
    await expect(planWasmHeap({ create: () => probe(), batchSize: 0 })).rejects.toThrow(
      /batchSize: expected a positive integer, got 0/,
    );
  });
});
