// SiT steps on webgpu with the flat AdamW's and EMA's copies back into each tensor's own buffer
// deferred (the default: the kernels bind the flat ranges) and made at once: the same losses and
// the same student, teacher and optimiser state, bit for bit, with fewer copies.
import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { setWebgpuWriteBackDeferral } from "@sit/kernels";
import { countBufferCopies, useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { createSiT } from "./sit";

afterAll(async () => {
  setWebgpuWriteBackDeferral(true);
  await tf.setBackend("cpu");
});

// Shader compilation on a CPU Vulkan driver takes seconds when idle, more under load.
const TIMEOUT = { timeout: 300_000 };

// A width of 64 puts most tensors at offsets of the flat buffers that a binding may start at.
const tiny = { imgSize: 16, patchSize: 4, embedDim: 64, depth: 1, numHeads: 2, dropPathRate: 0.1 };
const optim = { stepsPerEpoch: 10, epochs: 1, batchSize: 2, baseLr: 0.02, warmupEpochs: 0 };

async function train(deferred: boolean) {
  setWebgpuWriteBackDeferral(deferred);
  const recipe = createSiT({ backbone: tiny, projection: { hidden: 64, outDim: 16 }, optim });
  const rng = Rng.seed(5);
  const view = () => tf.tensor4d(rng.fillNormal(new Float32Array(2 * 16 * 16 * 3)), [2, 16, 16, 3]);
  const losses: number[] = [];
  let copies = 0;
  for (let step = 0; step < 3; step++) {
    const views: [tf.Tensor4D, tf.Tensor4D] = [view(), view()];
    const n = await countBufferCopies(async () => {
      losses.push((await recipe.trainStep({ views }, step)).loss);
    });
    // The first step gathers every tensor into the flat buffers; count the steps after it.
    if (step > 0) copies += n;
    tf.dispose(views);
  }
  const state = recipe.saveState();
  const values: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(state.tensors)) values[k] = (await t.data()) as Float32Array;
  tf.dispose(
    Object.entries(state.tensors).flatMap(([k, t]) => (k.startsWith("optim.") ? [t] : [])),
  );
  recipe.dispose();
  return { losses, values, copies };
}

describe("SiT on webgpu: deferred write-back of the flat AdamW's and EMA's tensors", () => {
  it(
    "gives the same losses and state as copying at once, bit for bit, with fewer copies",
    TIMEOUT,
    async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const eager = await train(false);
      const deferred = await train(true);
      expect(deferred.losses).toEqual(eager.losses);
      expect(Object.keys(deferred.values).sort()).toEqual(Object.keys(eager.values).sort());
      for (const [k, v] of Object.entries(eager.values))
        expect(Array.from(deferred.values[k]), k).toEqual(Array.from(v));
      expect(Object.keys(eager.values).some((k) => k.startsWith("teacher."))).toBe(true);
      expect(deferred.copies).toBeLessThan(eager.copies / 2);
    },
  );
});
