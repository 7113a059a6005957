// fit with each step's loss read one step late (options.readLossLate), on the cpu backend: the
// order of launches, reads, checkpoints and the guards, against the synchronous path's results.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it } from "vitest";
import { listCheckpoints, loadCheckpointFile } from "./checkpoint";
import type { TrainEvent } from "./events";
import { fit } from "./fit-node";
import { NonFiniteLossError, TensorLeakError } from "./guards";
import type { FitOptions } from "./options";
import { readLaunchedStep } from "./step-runner";
import { type RegressionBatch, RegressionRecipe, regressionLoader } from "./test-support";

const tmp = () => mkdtempSync(join(tmpdir(), "sit-fit-late-"));
const latest = (dir: string) => readFileSync(join(dir, "latest"), "utf8").trim();
const ckName = (step: number) => `checkpoint-${String(step).padStart(8, "0")}.safetensors`;

const recipes: RegressionRecipe[] = [];
afterEach(() => {
  for (const r of recipes.splice(0)) r.dispose();
});

/**
 * One run: `L<k>` when step k is launched, `R<k>` when its step event is reported, `C<n>` when a
 * checkpoint after n steps is written, `E<e>` when epoch e ends. Late runs launch through `launchStep`, synchronous ones
 * through `trainStep` (logged as `L<k>` too, so both logs read alike).
 */
async function run(
  late: boolean,
  options: Omit<FitOptions<unknown>, "sinks"> & { divergeFrom?: number; batches?: number },
) {
  const r = new RegressionRecipe();
  recipes.push(r);
  r.divergeFrom = options.divergeFrom ?? Number.POSITIVE_INFINITY;
  const log: string[] = [];
  const launch = r.launchStep.bind(r);
  r.launchStep = (batch, step) => {
    log.push(`L${step}`);
    return launch(batch, step);
  };
  const train = r.trainStep.bind(r);
  r.trainStep = (batch, step) => {
    log.push(`L${step}`);
    return train(batch, step);
  };
  const events: TrainEvent[] = [];
  const before = tf.memory().numTensors;
  const { batches = 100, ...fitOptions } = options;
  const outcome = await fit(r, regressionLoader(batches), {
    ...fitOptions,
    readLossLate: late,
    sinks: [
      {
        onEvent(e) {
          events.push(e);
          if (e.type === "step") log.push(`R${e.step}`);
          if (e.type === "checkpoint") log.push(`C${e.step + 1}`);
          if (e.type === "epoch") log.push(`E${e.epoch}`);
        },
      },
    ],
  }).catch((e: unknown) => e);
  // Leak-free on every outcome: the step in flight is read (or discarded) and disposed.
  expect(tf.memory().numTensors).toBe(before);
  const steps = events.flatMap((e) => (e.type === "step" ? [e] : []));
  return { recipe: r, log, events, steps, outcome, before };
}

/** The order of a late run without checkpoints: L0 L1 R0 L2 R1 … L(n−1) R(n−2) R(n−1). */
function lateOrder(n: number): string[] {
  const out = ["L0"];
  for (let k = 1; k < n; k++) out.push(`L${k}`, `R${k - 1}`);
  out.push(`R${n - 1}`);
  return out;
}

describe("fit: losses read one step late (readLossLate)", () => {
  it("reports every step in order, with the synchronous path's losses, reading step k after launching k + 1", async () => {
    const sync = await run(false, { maxSteps: 12 });
    const late = await run(true, { maxSteps: 12 });
    expect(sync.log.slice(0, 4)).toEqual(["L0", "R0", "L1", "R1"]);
    expect(late.log).toEqual(lateOrder(12));
    expect(late.steps.map((e) => e.step)).toEqual([...Array(12).keys()]);
    const numbers = (s: typeof sync.steps) =>
      s.map((e) => ({ loss: e.loss, terms: e.terms, lr: e.lr, epoch: e.epoch, images: e.images }));
    expect(numbers(late.steps)).toEqual(numbers(sync.steps));
    expect(late.outcome).toMatchObject({
      reason: "completed",
      steps: 12,
      lastLoss: sync.steps[11].loss,
    });
    // The values of the step in flight are not counted: the tensor count stays flat.
    expect(new Set(late.steps.slice(2).map((e) => e.tensors)).size).toBe(1);
    expect(late.steps[2].tensors - late.before).toBe(sync.steps[2].tensors - sync.before);

    // An epoch's last step is read before the epoch ends (its event, checkpoint and monitor).
    const epochs = await run(true, { maxSteps: 8, batches: 5 });
    expect(epochs.log).toEqual(
      ["L0", "L1", "R0", "L2", "R1", "L3", "R2", "L4", "R3", "R4", "E0"].concat([
        "L5",
        "L6",
        "R5",
        "L7",
        "R6",
        "R7",
      ]),
    );
    expect(epochs.steps.map((e) => e.epoch)).toEqual([0, 0, 0, 0, 0, 1, 1, 1]);
  });

  it("is off by default on cpu (a backend that reads synchronously)", async () => {
    const r = new RegressionRecipe();
    recipes.push(r);
    await fit(r, regressionLoader(5), { maxSteps: 3, sinks: [] });
    expect(r.launched).toEqual([]);
  });

  it("writes a checkpoint only once its step's loss is read, with the synchronous run's weights", async () => {
    const [a, b] = [tmp(), tmp()];
    const sync = await run(false, { maxSteps: 8, checkpoint: { dir: a, everySteps: 3 } });
    const late = await run(true, { maxSteps: 8, checkpoint: { dir: b, everySteps: 3 } });
    // The step before each checkpoint is read before it is written, and the next step is launched
    // only after it (the checkpoint holds the weights of exactly n updates).
    expect(late.log).toEqual(
      ["L0", "L1", "R0", "L2", "R1", "R2", "C3"]
        .concat(["L3", "L4", "R3", "L5", "R4", "R5", "C6"])
        .concat(["L6", "L7", "R6", "R7", "C8"]),
    );
    expect(listCheckpoints(b).map((c) => c.step)).toEqual([3, 6, 8]);
    expect(listCheckpoints(a).map((c) => c.step)).toEqual([3, 6, 8]);
    for (const step of [3, 6, 8]) {
      const [x, y] = await Promise.all(
        [a, b].map((d) => loadCheckpointFile(join(d, ckName(step)))),
      );
      expect(Object.keys(y.state.tensors).sort()).toEqual(Object.keys(x.state.tensors).sort());
      for (const [name, t] of Object.entries(x.state.tensors))
        expect(Array.from(y.state.tensors[name].dataSync())).toEqual(Array.from(t.dataSync()));
      x.dispose();
      y.dispose();
    }
    expect(late.steps.map((e) => e.loss)).toEqual(sync.steps.map((e) => e.loss));
  });

  it("stops on a non-finite loss read late; `latest` names a checkpoint whose loss was read and finite", async () => {
    // The update of step 4 blows the weights up: step 5's loss is the first non-finite one, read
    // after step 6 was launched (the weights of 6 and 7 updates are both bad, and never saved).
    const dir = tmp();
    const late = await run(true, {
      maxSteps: 20,
      divergeFrom: 4,
      checkpoint: { dir, everySteps: 4 },
    });
    const err = late.outcome as NonFiniteLossError;
    expect(err).toBeInstanceOf(NonFiniteLossError);
    expect(err.step).toBe(5);
    expect(late.log.slice(-3)).toEqual(["L5", "R4", "L6"]);
    expect(late.recipe.launched).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(err.checkpoints).toEqual({ dir, lastGood: join(dir, ckName(4)) });
    expect(latest(dir)).toBe(ckName(4));
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([4]);
    // Checkpoint 4 was written after step 3's loss was read, and that loss was finite.
    expect(late.log.indexOf("C4")).toBe(late.log.indexOf("R3") + 1);
    expect(Number.isFinite(late.steps.find((e) => e.step === 3)!.loss)).toBe(true);
    const ck = await loadCheckpointFile(join(dir, ckName(4)));
    expect(Math.max(...Array.from(ck.state.tensors.w.dataSync(), Math.abs))).toBeLessThan(10);
    ck.dispose();
  });

  it("sets aside a checkpoint holding the weights that gave the non-finite loss, as the synchronous path does", async () => {
    // Update 4 (step 3) diverges; checkpoint 4 is written after step 3's finite loss is read and
    // holds the diverged weights; step 4's loss shows it.
    const [a, b] = [tmp(), tmp()];
    const opts = (dir: string) => ({
      maxSteps: 20,
      divergeFrom: 3,
      checkpoint: { dir, everySteps: 2 },
    });
    const sync = (await run(false, opts(a))).outcome as NonFiniteLossError;
    const late = (await run(true, opts(b))).outcome as NonFiniteLossError;
    expect(late).toBeInstanceOf(NonFiniteLossError);
    expect(late.step).toBe(sync.step);
    expect(late.step).toBe(4);
    expect(late.checkpoints).toEqual({
      dir: b,
      lastGood: join(b, ckName(2)),
      setAside: join(b, "checkpoint-00000004.diverged.safetensors"),
    });
    expect(sync.checkpoints?.lastGood).toBe(join(a, ckName(2)));
    expect(latest(b)).toBe(ckName(2));
    expect(listCheckpoints(b).map((c) => c.step)).toEqual([2]);
  });

  it("reads the last step before the end checkpoint, and a non-finite loss found then stops like any other", async () => {
    const dir = tmp();
    const ok = await run(true, { maxSteps: 6, checkpoint: { dir } });
    expect(ok.log.slice(-4)).toEqual(["L5", "R4", "R5", "C6"]);
    expect(latest(dir)).toBe(ckName(6));

    const dir2 = tmp();
    const bad = await run(true, { maxSteps: 6, divergeFrom: 4, checkpoint: { dir: dir2 } });
    const err = bad.outcome as NonFiniteLossError;
    expect(err).toBeInstanceOf(NonFiniteLossError);
    expect(err.step).toBe(5); // the last step, read while draining
    expect(err.checkpoints).toEqual({ dir: dir2, lastGood: undefined });
    expect(listCheckpoints(dir2)).toEqual([]);
    expect(bad.events.at(-1)).toMatchObject({ type: "end", reason: "error" });
  });

  it("on abort, reads the step in flight before the interrupt checkpoint; a non-finite loss there stops it", async () => {
    const dir = tmp();
    const ac = new AbortController();
    const stopAt2 = { onStep: (e: { step: number }) => void (e.step === 2 && ac.abort()) };
    const aborted = await run(true, {
      maxSteps: 20,
      signal: ac.signal,
      checkpoint: { dir },
      ...stopAt2,
    });
    // Step 2 is reported after step 3 was launched: step 3 is read, then the checkpoint written.
    expect(aborted.log.slice(-4)).toEqual(["L3", "R2", "R3", "C4"]);
    expect(aborted.outcome).toMatchObject({ reason: "aborted", steps: 4 });
    expect(latest(dir)).toBe(ckName(4));

    const dir2 = tmp();
    const ac2 = new AbortController();
    const diverged = await run(true, {
      maxSteps: 20,
      divergeFrom: 2,
      signal: ac2.signal,
      checkpoint: { dir: dir2 },
      onStep: (e) => void (e.step === 2 && ac2.abort()),
    });
    expect((diverged.outcome as NonFiniteLossError).step).toBe(3);
    expect(listCheckpoints(dir2)).toEqual([]);
  });

  it("is leak-free across checkpoints and still finds a leak", async () => {
    const dir = tmp();
    const clean = await run(true, {
      maxSteps: 14,
      checkpoint: { dir, everySteps: 5 },
      leakCheck: { action: "error" },
    });
    expect(clean.outcome).toMatchObject({ reason: "completed", steps: 14 });
    expect(new Set(clean.steps.slice(2).map((e) => e.tensors)).size).toBe(1);

    const r = new RegressionRecipe();
    recipes.push(r);
    r.leak = true;
    const err = await fit(r, regressionLoader(5), {
      maxSteps: 14,
      sinks: [],
      readLossLate: true,
      leakCheck: { action: "error" },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TensorLeakError);
  });

  it("counts a step as read only once its other reads (`settled`) are, checkpoints included", async () => {
    for (const late of [true, false]) {
      const r = new RegressionRecipe();
      recipes.push(r);
      const log: string[] = [];
      const launch = r.launchStep.bind(r);
      // Each step's extra read settles a few timer ticks after launch, after its values' read.
      // (The regression recipe's own steps are synchronous; these return promises.)
      const async = (fn: unknown) => fn as never;
      r.launchStep = async(async (batch: RegressionBatch, step: number) => {
        const launched = await launch(batch, step);
        const settled = new Promise<void>((ok) =>
          setTimeout(() => {
            log.push(`S${step}`);
            ok();
          }, 5),
        );
        return { ...launched, settled };
      });
      r.trainStep = async(async (batch: RegressionBatch, step: number) =>
        readLaunchedStep(await r.launchStep(batch, step)),
      );
      const dir = tmp();
      await fit(r, regressionLoader(10), {
        maxSteps: 4,
        readLossLate: late,
        checkpoint: { dir, everySteps: 2 },
        sinks: [
          {
            onEvent(e) {
              if (e.type === "step") log.push(`R${e.step}`);
              if (e.type === "checkpoint") log.push(`C${e.step + 1}`);
            },
          },
        ],
      });
      for (const k of [0, 1, 2, 3])
        expect(log.indexOf(`S${k}`), `${log}`).toBeLessThan(log.indexOf(`R${k}`));
      expect(log.indexOf("S1")).toBeLessThan(log.indexOf("C2"));
      // A failed extra read fails the step.
      const bad = new RegressionRecipe();
      recipes.push(bad);
      const badLaunch = bad.launchStep.bind(bad);
      bad.launchStep = async(async (batch: RegressionBatch, step: number) => ({
        ...(await badLaunch(batch, step)),
        settled: step === 1 ? Promise.reject(new Error("state read failed")) : Promise.resolve(),
      }));
      bad.trainStep = async(async (batch: RegressionBatch, step: number) =>
        readLaunchedStep(await bad.launchStep(batch, step)),
      );
      await expect(
        fit(bad, regressionLoader(10), { maxSteps: 3, readLossLate: late, sinks: [] }),
      ).rejects.toThrow("state read failed");
    }
  });

  it("rejects readLossLate without launchStep, and a launchStep that returns no values tensor", async () => {
    const r = new RegressionRecipe();
    recipes.push(r);
    const plain = {
      name: "plain",
      trainStep: r.trainStep.bind(r),
      saveState: r.saveState.bind(r),
      loadState: r.loadState.bind(r),
    };
    await expect(
      fit(plain, regressionLoader(5), { maxSteps: 2, sinks: [], readLossLate: true }),
    ).rejects.toThrow(/options\.readLossLate: true needs recipe\.launchStep.*"plain"/);
    await expect(
      fit(r, regressionLoader(5), { maxSteps: 2, sinks: [], readLossLate: "yes" as never }),
    ).rejects.toThrow(ConfigError);
    const bad = Object.assign(Object.create(r) as RegressionRecipe, {
      launchStep: () => ({ values: tf.tensor1d([1, 2]), terms: ["a", "b"] }),
    });
    await expect(
      fit(bad, regressionLoader(5), { maxSteps: 2, sinks: [], readLossLate: true }),
    ).rejects.toThrow(/recipe\.launchStep \(step 0\).*shape \[2\] with terms \["a", "b"\]/);
  });
});
