// SiT's captured steps on webgpu (lavapipe in CI): after two recorded steps, every step is a
// replay of the second (captured-steps.ts, @sit/kernels' StepCapture), and training is bit for bit
// what running every step gives: losses, weights, optimiser moments, BatchNorm statistics,
// generators and the optimiser's step count.
import * as tf from "@tensorflow/tfjs";
import { useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { type SitRecipe, createSiT } from "./sit";

afterAll(async () => {
  await tf.setBackend("cpu");
});

// Shader compilation on a CPU Vulkan driver takes seconds when idle, more under load.
const TIMEOUT = { timeout: 300_000 };

const build = () =>
  createSiT({
    backbone: { imgSize: 8, patchSize: 4, embedDim: 32, depth: 3, numHeads: 2, dropPathRate: 0.3 },
    projection: { hidden: 64, outDim: 16 },
    // Warm-up: the learning rate changes every step.
    optim: { batchSize: 2, epochs: 2, stepsPerEpoch: 10, warmupEpochs: 1 },
    lambda: 5,
  });

/** The same recipe with every step run through tfjs: the reference. */
function uncaptured(): SitRecipe {
  const recipe = build();
  recipe.stepCapture.enabled = false;
  return recipe;
}

/** Step k's two views (seeded; tfjs treats a seed of 0 as none). */
const views = (k: number) =>
  [0, 1].map((i) => tf.randomNormal([2, 8, 8, 3], 0, 1, "float32", 100 * k + i + 7) as tf.Tensor4D);

/** Run steps `from` … `to − 1`, with `between(k)` after step k; each step's [loss, Lc, Lr]. */
async function train(
  recipe: SitRecipe,
  from: number,
  to: number,
  between: (k: number) => Promise<void> = async () => {},
): Promise<number[][]> {
  const out: number[][] = [];
  for (let k = from; k < to; k++) {
    const v = views(k);
    const r = await recipe.trainStep({ views: v }, k);
    tf.dispose(v);
    out.push([r.loss, r.terms!.contrastive, r.terms!.reconstruction]);
    await between(k);
  }
  return out;
}

/** Every tensor of the recipe's state, read, and its metadata (generators, optimiser). */
async function stateOf(recipe: SitRecipe) {
  const s = recipe.saveState();
  const values: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(s.tensors)) {
    values[k] = Array.from(await t.data());
    if (!(t instanceof tf.Variable)) t.dispose();
  }
  return { values, meta: JSON.stringify([s.meta.rngs, s.meta.optimizer]) };
}

describe("SiT captured steps (webgpu)", () => {
  it(
    "replay steps bit for bit as running them, with constant tensor counts",
    async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const plain = uncaptured();
      const expected = await train(plain, 0, 9);
      const captured = build();
      const counts: number[] = [];
      const got = await train(captured, 0, 9, async () => {
        counts.push(tf.memory().numTensors);
      });
      expect(plain.stepCapture.status.captures).toBe(0);
      // Steps 0–1 as usual, 2–3 recorded, 4–8 replayed.
      expect(captured.stepCapture.status).toEqual({ replays: 5, captures: 1, lastRefusal: null });
      expect(got).toEqual(expected);
      expect(new Set(counts.slice(4)).size).toBe(1);
      expect(await stateOf(captured)).toEqual(await stateOf(plain));
      plain.dispose();
      captured.dispose();
    },
    TIMEOUT,
  );

  it(
    "stop replaying when the weights are read between steps, and capture again",
    async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const plain = uncaptured();
      const captured = build();
      // A checkpoint's read after step 5 (a replay): the weights' own buffers are written back.
      const read = (recipe: SitRecipe) => async (k: number) => {
        if (k === 5) await stateOf(recipe);
      };
      const expected = await train(plain, 0, 12, read(plain));
      const got = await train(captured, 0, 12, read(captured));
      expect(got).toEqual(expected);
      // Steps 4–5 replayed; 6 refused, 6–7 as usual, 8–9 recorded, 10–11 replayed.
      expect(captured.stepCapture.status.captures).toBe(2);
      expect(captured.stepCapture.status.replays).toBe(4);
      expect(captured.stepCapture.status.lastRefusal).toMatch(
        /where the host knows parameters to lie changed/,
      );
      expect(await stateOf(captured)).toEqual(await stateOf(plain));
      plain.dispose();
      captured.dispose();
    },
    TIMEOUT,
  );

  it(
    "drop the capture on loadState and go on as a recipe loaded from the same state",
    async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const source = uncaptured();
      await train(source, 0, 3);
      const state = source.saveState();
      const captured = build();
      await train(captured, 0, 6);
      expect(captured.stepCapture.status.replays).toBe(2);
      captured.loadState(state);
      const plain = uncaptured();
      plain.loadState(state);
      expect(await train(captured, 3, 9)).toEqual(await train(plain, 3, 9));
      expect(captured.stepCapture.status).toMatchObject({ captures: 2, replays: 4 });
      expect(await stateOf(captured)).toEqual(await stateOf(plain));
      for (const r of [source, captured, plain]) r.dispose();
    },
    TIMEOUT,
  );
});
