// fit of the SiT recipe on webgpu (lavapipe in CI): each step's loss is read one step late, never
// synchronously, and reported in order with the values of the synchronous path.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { webgpuHasShaderF16 } from "@sit/kernels";
import { useWebgpu } from "@sit/testing";
import { type FitOptions, NonFiniteLossError, type TrainEvent } from "@sit/train";
import { fit, loadCheckpointFile } from "@sit/train/node";
import { afterAll, describe, expect, it } from "vitest";
import type { TwoViewBatch } from "./batches";
import { type SitRecipe, createSiT } from "./sit";

afterAll(async () => {
  await tf.setBackend("cpu");
});

// Shader compilation on a CPU Vulkan driver takes seconds when idle, more under load.
const TIMEOUT = { timeout: 300_000 };

const tiny = { imgSize: 16, patchSize: 4, embedDim: 32, depth: 2, numHeads: 2, dropPathRate: 0.1 };
const optim = { stepsPerEpoch: 50, epochs: 1, batchSize: 4, baseLr: 0.02, warmupEpochs: 0 };
const build = () => createSiT({ backbone: tiny, projection: { hidden: 48, outDim: 16 }, optim });

/** The same batches every epoch, drawn on the host from a seeded Rng. */
function* batches(): Generator<TwoViewBatch> {
  const rng = Rng.seed(3);
  const view = () => tf.tensor4d(rng.fillNormal(new Float32Array(4 * 16 * 16 * 3)), [4, 16, 16, 3]);
  for (let i = 0; i < 50; i++) yield { views: [view(), view()] };
}

/**
 * Count synchronous reads of data that lives only on the GPU (tfjs's webgpu readSync; a value read
 * asynchronously before is cached on the host and costs no GPU wait) while `fn` runs.
 */
async function countingSyncReads<T>(
  fn: () => Promise<T>,
): Promise<{ value: T; syncReads: number }> {
  const be = tf.backend() as unknown as {
    readSync: (id: object) => unknown;
    tensorMap: { get(id: object): { values?: unknown } | undefined };
  };
  const original = be.readSync;
  let syncReads = 0;
  be.readSync = function (this: unknown, id: object) {
    if (be.tensorMap.get(id)?.values == null) syncReads++;
    return original.call(this, id);
  };
  try {
    return { value: await fn(), syncReads };
  } finally {
    be.readSync = original;
  }
}

/** Fit `recipe`, logging `L<k>` (step k launched), `R<k>` (reported) and `C<n>` (checkpoint). */
async function run(recipe: SitRecipe, options: Omit<FitOptions<TwoViewBatch>, "sinks">) {
  const log: string[] = [];
  const launch = recipe.launchStep.bind(recipe);
  recipe.launchStep = (batch, step) => {
    log.push(`L${step}`);
    return launch(batch, step);
  };
  const events: TrainEvent[] = [];
  const before = tf.memory().numTensors;
  const { value: outcome, syncReads } = await countingSyncReads(() =>
    fit(recipe, () => batches(), {
      ...options,
      handleSignals: false,
      sinks: [
        {
          onEvent(e) {
            events.push(e);
            if (e.type === "step") log.push(`R${e.step}`);
            if (e.type === "checkpoint") log.push(`C${e.step + 1}`);
          },
        },
      ],
    }).catch((e: unknown) => e),
  );
  const steps = events.flatMap((e) => (e.type === "step" ? [e] : []));
  return { log, steps, outcome, syncReads, leaked: tf.memory().numTensors - before };
}

describe("fit of SiT on webgpu, losses read one step late", () => {
  it(
    "never reads synchronously, reports every step in order with the synchronous path's losses, checkpoints after the read, leaks nothing",
    TIMEOUT,
    async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const syncRecipe = build();
      const sync = await run(syncRecipe, { maxSteps: 5, readLossLate: false });
      syncRecipe.dispose();
      expect(sync.outcome).toMatchObject({ reason: "completed", steps: 5 });

      const dir = mkdtempSync(join(tmpdir(), "sit-fit-webgpu-"));
      const recipe = build();
      // readLossLate is on by default on webgpu.
      const late = await run(recipe, { maxSteps: 5, checkpoint: { dir, everySteps: 2 } });
      expect(late.outcome).toMatchObject({ reason: "completed", steps: 5 });
      expect(late.syncReads).toBe(0);
      expect(late.log).toEqual([
        "L0",
        "L1",
        "R0",
        "R1",
        "C2",
        "L2",
        "L3",
        "R2",
        "R3",
        "C4",
        "L4",
        "R4",
        "C5",
      ]);
      expect(late.steps.map((e) => e.step)).toEqual([0, 1, 2, 3, 4]);
      const lateLosses = late.steps.flatMap((e) => [
        e.loss,
        e.terms.contrastive,
        e.terms.reconstruction,
      ]);
      const syncLosses = sync.steps.flatMap((e) => [
        e.loss,
        e.terms.contrastive,
        e.terms.reconstruction,
      ]);
      for (const [i, v] of lateLosses.entries())
        expect(Math.abs(v - syncLosses[i])).toBeLessThanOrEqual(
          1e-5 * Math.abs(syncLosses[i]) + 1e-6,
        );
      // One tensor per step in flight is not counted; nothing grows, nothing is left.
      expect(new Set(late.steps.slice(2).map((e) => e.tensors)).size).toBe(1);
      expect(late.leaked).toBe(0);
      expect(readFileSync(join(dir, "latest"), "utf8").trim()).toBe(
        "checkpoint-00000005.safetensors",
      );
      recipe.dispose();
    },
  );

  it(
    "stops on a loss that turns non-finite; `latest` names a checkpoint whose loss was read and finite",
    TIMEOUT,
    async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const dir = mkdtempSync(join(tmpdir(), "sit-fit-webgpu-diverge-"));
      const recipe = build();
      // --lr 1e30 from step 3 on: the weights blow up for real.
      const hyperAt = recipe.hyperAt.bind(recipe);
      recipe.hyperAt = (step) => ({ ...hyperAt(step), lr: step >= 3 ? 1e30 : hyperAt(step).lr });
      const r = await run(recipe, { maxSteps: 12, checkpoint: { dir, everySteps: 3 } });
      expect(r.syncReads).toBe(0);
      expect(r.leaked).toBe(0);
      const err = r.outcome as NonFiniteLossError;
      expect(err).toBeInstanceOf(NonFiniteLossError);
      expect(err.step).toBeGreaterThanOrEqual(4);
      // Every reported loss is finite, and the step after the last one reported is the failing one.
      expect(r.steps.every((e) => Number.isFinite(e.loss))).toBe(true);
      expect(r.steps.at(-1)?.step).toBe(err.step - 1);
      const lastGood = err.checkpoints?.lastGood;
      expect(lastGood).toBeDefined();
      const name = readFileSync(join(dir, "latest"), "utf8").trim();
      expect(join(dir, name)).toBe(lastGood);
      const n = Number(/checkpoint-(\d+)/.exec(name)![1]);
      // Written after step n − 1's loss was read (finite), before step n was launched.
      expect(n).toBeLessThan(err.step);
      expect(r.log.indexOf(`C${n}`)).toBe(r.log.indexOf(`R${n - 1}`) + 1);
      expect(r.log.indexOf(`L${n}`)).toBeGreaterThan(r.log.indexOf(`C${n}`));
      const ck = await loadCheckpointFile(lastGood!);
      for (const [key, t] of Object.entries(ck.state.tensors))
        if (t.dtype === "float32") expect((await t.data()).every(Number.isFinite), key).toBe(true);
      ck.dispose();
      recipe.dispose();
    },
  );

  it(
    "mixed-f16: the loss scaler stays on the device (no synchronous read), skips overflowing steps, and checkpoints its read-back state with the optimiser's step count",
    TIMEOUT,
    async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      if (!webgpuHasShaderF16()) {
        ctx.skip();
        return;
      }
      const dir = mkdtempSync(join(tmpdir(), "sit-fit-webgpu-mixed-"));
      const recipe = createSiT({
        backbone: tiny,
        projection: { hidden: 48, outDim: 16 },
        optim,
        precision: "mixed-f16",
      });
      const scaler = recipe.lossScaler!;
      // 2^40 overflows f16 in the backward: the first steps are skipped until the scale backs off.
      scaler.loadState({ ...scaler.state(), scale: 2 ** 40 });
      // (The first step would move it there; done before counting so that its two state tensors,
      // kept for the run, are not counted as leaked.)
      scaler.useDevice();
      const r = await run(recipe, { maxSteps: 4, checkpoint: { dir, everySteps: 2 } });
      expect(r.outcome).toMatchObject({ reason: "completed", steps: 4 });
      expect(scaler.onDevice).toBe(true);
      expect(r.syncReads).toBe(0);
      expect(r.leaked).toBe(0);
      // Four steps, every one skipped at these scales (each halves it): no optimiser step counted.
      expect(scaler.state()).toMatchObject({ scale: 2 ** 36, growthTracker: 0 });
      expect(recipe.optimizer.numSteps).toBe(0);
      const ck = await loadCheckpointFile(join(dir, "checkpoint-00000002.safetensors"));
      expect(ck.state.meta.lossScaler).toMatchObject({ scale: 2 ** 38, growthTracker: 0 });
      expect((ck.state.meta.optimizer as { step: number }).step).toBe(0);
      ck.dispose();
      recipe.dispose();
    },
  );
});
