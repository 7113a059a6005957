import * as tf from "@tensorflow/tfjs";
import { withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { measureStepBytes, planWasmHeap, stepBytesAt } from "./heap-plan";
import { createSiT } from "./sit";

// A small SiT (depth 4, so that recomputing blocks saves memory that can be seen).
function probe(batchSize = 4) {
  const recipe = createSiT({
    backbone: { imgSize: 16, patchSize: 4, embedDim: 32, depth: 4, numHeads: 2, inChans: 1 },
    projection: { hidden: 64, outDim: 16 },
    optim: { batchSize, epochs: 2, stepsPerEpoch: 2 },
  });
  return Object.assign(recipe, {
    imageShape: [16, 16, 1] as [number, number, number],
    setCheckpointBlocks: (on: boolean) => {
      recipe.student.backbone.checkpointBlocks = on;
    },
  });
}

async function measuredPeak(batch: number, checkpointBlocks: boolean): Promise<number> {
  const start = tf.memory().numBytes;
  const r = probe(batch);
  r.setCheckpointBlocks(checkpointBlocks);
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
      for (const [batch, on, s] of [
        [24, false, plain],
        [24, true, recompute],
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

  it("turns recomputation on only when the step needs it, and says when nothing fits", async () => {
    await withBackend("wasm", async () => {
      const roomy = await planWasmHeap({ create: () => probe(), batchSize: 32 });
      expect(roomy.fits).toBe(true);
      expect(roomy.checkpointBlocks).toBe(false);
      expect(roomy.withRecompute).toBeLessThan(roomy.withoutRecompute);
      // A heap between the two estimates: only the recomputing step fits.
      const between = roomy.used + Math.round((roomy.withRecompute + roomy.withoutRecompute) / 2);
      const tight = await planWasmHeap({ create: () => probe(), batchSize: 32, limit: between });
      expect(tight.checkpointBlocks).toBe(true);
      expect(tight.fits).toBe(true);
      // Below both: it does not fit, and the largest batch that would is smaller than asked.
      const small = roomy.used + Math.round(roomy.withRecompute / 2);
      const tooSmall = await planWasmHeap({ create: () => probe(), batchSize: 32, limit: small });
      expect(tooSmall.fits).toBe(false);
      expect(tooSmall.maxBatchWithRecompute).toBeLessThan(32);
    });
  });

  it("rejects a bad batch size, naming it", async () => {
    await expect(planWasmHeap({ create: () => probe(), batchSize: 0 })).rejects.toThrow(
      /batchSize: expected a positive integer, got 0/,
    );
  });
});
