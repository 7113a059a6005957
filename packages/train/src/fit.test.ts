import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it } from "vitest";
import { listCheckpoints, loadCheckpointFile } from "./checkpoint";
import type { MetricSink, StepEvent, TrainEvent } from "./events";
import { fit as fitInPage } from "./fit";
import { fit } from "./fit-node";
import { NonFiniteLossError, TensorLeakError } from "./guards";
import { RegressionRecipe, regressionLoader } from "./test-support";

const tmp = () => mkdtempSync(join(tmpdir(), "sit-fit-"));

class MemorySink implements MetricSink {
  events: TrainEvent[] = [];
  closed = 0;
  onEvent(e: TrainEvent) {
    this.events.push(e);
  }
  close() {
    this.closed++;
  }
  of<T extends TrainEvent["type"]>(type: T) {
    return this.events.filter((e) => e.type === type) as Extract<TrainEvent, { type: T }>[];
  }
}

const recipes: RegressionRecipe[] = [];
function recipe(...args: ConstructorParameters<typeof RegressionRecipe>) {
  const r = new RegressionRecipe(...args);
  recipes.push(r);
  return r;
}
afterEach(() => {
  for (const r of recipes.splice(0)) r.dispose();
});

/** Losses of every step of an uninterrupted run. */
async function straightLosses(steps: number, batchesPerEpoch: number): Promise<number[]> {
  const losses: number[] = [];
  await fit(recipe(), regressionLoader(batchesPerEpoch), {
    maxSteps: steps,
    sinks: [],
    onStep: (e) => {
      losses.push(e.loss);
    },
  });
  return losses;
}

describe("fit", () => {
  it("emits a step event after every step with the loss terms, schedule, throughput and tensor count", async () => {
    const sink = new MemorySink();
    const r = recipe();
    const before = tf.memory().numTensors;
    const result = await fit(r, regressionLoader(4), { epochs: 2, sinks: [sink] });
    expect(tf.memory().numTensors).toBe(before);
    expect(result).toMatchObject({ reason: "completed", steps: 8, epoch: 2 });
    expect(sink.closed).toBe(1);
    expect(sink.events.map((e) => e.type)).toEqual([
      "start",
      ...Array(4).fill("step"),
      "epoch",
      ...Array(4).fill("step"),
      "epoch",
      "end",
    ]);
    const steps = sink.of("step");
    expect(steps.map((e) => e.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(steps.map((e) => e.epoch)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    for (const e of steps) {
      expect(e.lr).toBeCloseTo(r.lr(e.step), 12);
      expect(e.terms.mse).toBe(e.loss);
      expect(e.terms.half).toBeCloseTo(e.loss / 2, 6);
      expect(e.images).toBe(8);
      expect(e.imagesPerSec).toBeGreaterThan(0);
      expect(e.stepMs).toBeGreaterThanOrEqual(0);
      expect(e.tensors).toBe(before);
    }
    // stepsPerEpoch is learnt at the end of the first epoch, then known.
    expect(steps[0].stepsPerEpoch).toBeUndefined();
    expect(steps[7].stepsPerEpoch).toBe(4);
    expect(steps[7].totalSteps).toBe(8);
    const elapsed = steps.map((e) => e.elapsedSec);
    expect([...elapsed].sort((a, b) => a - b)).toEqual(elapsed);
    expect(sink.of("end")[0]).toMatchObject({ reason: "completed", steps: 8 });
  });

  it("cuts epochs at stepsPerEpoch, stops at maxSteps, and accepts async and array loaders", async () => {
    const sink = new MemorySink();
    await fit(recipe(), regressionLoader(10), {
      epochs: 5,
      maxSteps: 7,
      stepsPerEpoch: 3,
      sinks: [sink],
    });
    expect(sink.of("step").map((e) => e.epoch)).toEqual([0, 0, 0, 1, 1, 1, 2]);
    expect(sink.of("start")[0].totalSteps).toBe(7);

    async function* asyncBatches(e: number) {
      yield* regressionLoader(2)(e);
    }
    const a = await fit(recipe(), asyncBatches, { epochs: 3, sinks: [] });
    expect(a.steps).toBe(6);

    const fixed = [...regressionLoader(3)(0)];
    const b = await fit(recipe(), fixed, { epochs: 2, sinks: [], disposeBatches: false });
    expect(b.steps).toBe(6);
    tf.dispose(fixed as unknown as tf.TensorContainer);
  });

  it("refuses a generator object that is exhausted after one epoch, naming the loader", async () => {
    const once = regressionLoader(2)(0);
    await expect(fit(recipe(), once, { epochs: 2, sinks: [] })).rejects.toThrow(
      /loader: epoch 1 produced no batches/,
    );
  });

  it("validates its arguments with errors naming the field", async () => {
    const r = recipe();
    const l = regressionLoader(2);
    await expect(fit(r, l, { sinks: [] })).rejects.toThrow(/expected epochs or maxSteps/);
    await expect(fit(r, l, { epochs: 0 })).rejects.toThrow(/options\.epochs: expected .*got 0/);
    await expect(fit(r, 42 as never, { epochs: 1 })).rejects.toThrow(/loader: expected .*got 42/);
    await expect(fit(r, l, { epochs: 1, checkpoint: { dir: "", everySteps: 2 } })).rejects.toThrow(
      ConfigError,
    );
    await expect(fit(r, l, { epochs: 1, resume: true })).rejects.toThrow(/checkpoint\.dir/);
    await expect(fit(r, l, { epochs: 1, handleSignals: ["INT"] as never })).rejects.toThrow(
      /options\.handleSignals: expected .*got \["INT"\]/,
    );
    await expect(
      fit({ name: "no-save", trainStep: () => ({ loss: 1 }) } as never, l, { epochs: 1 }),
    ).rejects.toThrow(/recipe\.saveState: expected a function, got undefined/);
    const lossTensor = tf.scalar(1);
    const returnsTensor = {
      name: "returns-a-tensor",
      trainStep: () => ({ loss: lossTensor }),
      saveState: () => ({ tensors: {}, meta: {} }),
      loadState: () => {},
    };
    await expect(
      fit(returnsTensor as never, l, { epochs: 1, sinks: [], batchSize: 8 }),
    ).rejects.toThrow(/recipe\.trainStep \(step 0\): expected \{ loss: number.*got \{"loss":/);
    lossTensor.dispose();
  });

  it("runs the monitor every N epochs and at the end, and emits its metrics", async () => {
    const sink = new MemorySink();
    const calls: Array<[number, number]> = [];
    await fit(recipe(), regressionLoader(2), {
      epochs: 4,
      sinks: [sink],
      monitor: {
        everyEpochs: 2,
        fn: async ({ step, epoch }) => {
          calls.push([step, epoch]);
          return { knn_top1: step / 10 };
        },
      },
    });
    // After epochs 2 and 4; the end coincides with epoch 4's, so it does not run twice.
    expect(calls).toEqual([
      [4, 1],
      [8, 3],
    ]);
    expect(sink.of("monitor").map((e) => e.metrics.knn_top1)).toEqual([0.4, 0.8]);
    calls.length = 0;
    await fit(recipe(), regressionLoader(2), {
      epochs: 3,
      sinks: [],
      monitor: {
        everyEpochs: 2,
        fn: ({ step, epoch }) => {
          calls.push([step, epoch]);
          return { x: 1 };
        },
      },
    });
    expect(calls).toEqual([
      [4, 1],
      [6, 2],
    ]);
  });
});

describe("fit: checkpoints and resume", () => {
  it("resumes mid-epoch so that the next steps' losses equal an uninterrupted run's", async () => {
    const reference = await straightLosses(10, 4);
    const dir = tmp();
    const first: number[] = [];
    const r1 = recipe();
    await fit(r1, regressionLoader(4), {
      maxSteps: 6,
      sinks: [],
      checkpoint: { dir },
      onStep: (e) => {
        first.push(e.loss);
      },
    });
    expect(first).toEqual(reference.slice(0, 6));
    const sink = new MemorySink();
    const r2 = recipe(99); // a different seed: everything must come from the checkpoint
    const result = await fit(r2, regressionLoader(4), {
      maxSteps: 10,
      sinks: [sink],
      checkpoint: { dir },
      resume: true,
    });
    expect(result.resumedFrom).toBe(join(dir, "checkpoint-00000006.safetensors"));
    const resumed = sink.of("step");
    expect(resumed.map((e) => e.step)).toEqual([6, 7, 8, 9]);
    expect(resumed.map((e) => e.epoch)).toEqual([1, 1, 2, 2]);
    resumed.forEach((e, i) => {
      expect(Math.abs(e.loss - reference[6 + i])).toBeLessThanOrEqual(
        1e-5 * Math.abs(reference[6 + i]),
      );
    });
    expect(sink.of("start")[0]).toMatchObject({ startStep: 6, totalSteps: 10 });
  });

  it("resumes from a checkpoint written on an epoch's last step at the next epoch", async () => {
    const reference = await straightLosses(6, 3);
    const dir = tmp();
    await fit(recipe(), regressionLoader(3), {
      epochs: 1,
      sinks: [],
      checkpoint: { dir },
    });
    const ck = await loadCheckpointFile(join(dir, "checkpoint-00000003.safetensors"));
    expect(ck.progress).toMatchObject({ step: 3, epoch: 1, stepInEpoch: 0, stepsPerEpoch: 3 });
    expect(ck.recipe).toBe("fake-regression");
    expect(ck.versions["@sit/train"]).toMatch(/^\d+\.\d+\.\d+/);
    ck.dispose();
    const losses: number[] = [];
    await fit(recipe(5), regressionLoader(3), {
      epochs: 2,
      sinks: [],
      resume: dir,
      onStep: (e) => {
        losses.push(e.loss);
      },
    });
    expect(losses).toHaveLength(3);
    losses.forEach((l, i) => {
      expect(Math.abs(l - reference[3 + i])).toBeLessThanOrEqual(1e-5 * Math.abs(reference[3 + i]));
    });
  });

  it("disposes the handed-over state tensors (optimiser moments) after writing, never the variables", async () => {
    const dir = tmp();
    const r = recipe();
    const sink = new MemorySink();
    const before = tf.memory().numTensors;
    await fit(r, regressionLoader(4), {
      maxSteps: 6,
      sinks: [sink],
      checkpoint: { dir, everySteps: 1 },
    });
    expect(sink.of("checkpoint")).toHaveLength(6);
    expect(new Set(sink.of("step").map((e) => e.tensors))).toEqual(new Set([before]));
    expect(tf.memory().numTensors).toBe(before);
    expect(r.w.isDisposed).toBe(false);
    const ck = await loadCheckpointFile(join(dir, "checkpoint-00000006.safetensors"));
    expect(Object.keys(ck.state.tensors).sort()).toEqual([
      "b",
      "optimizer.exp_avg.b",
      "optimizer.exp_avg.w",
      "optimizer.exp_avg_sq.b",
      "optimizer.exp_avg_sq.w",
      "w",
    ]);
    expect(Array.from(ck.state.tensors.w.dataSync())).toEqual(Array.from(r.w.dataSync()));
    expect(ck.state.meta.optimizer).toMatchObject({ step: 6 });
    ck.dispose();
  });

  it("keeps the last k checkpoints, and `latest` names the newest", async () => {
    const dir = tmp();
    await fit(recipe(), regressionLoader(4), {
      maxSteps: 9,
      sinks: [],
      checkpoint: { dir, everySteps: 2, keepLast: 2 },
    });
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([8, 9]);
    expect(readFileSync(join(dir, "latest"), "utf8").trim()).toBe(
      "checkpoint-00000009.safetensors",
    );
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("stops on SIGINT after the current step, writes a checkpoint, removes its handler, and resumes exactly", async () => {
    const reference = await straightLosses(8, 4);
    const dir = tmp();
    const listeners = process.listenerCount("SIGINT");
    const termListeners = process.listenerCount("SIGTERM");
    const warnings: string[] = [];
    const sink = new MemorySink();
    const result = await fit(recipe(), regressionLoader(4), {
      maxSteps: 8,
      sinks: [sink],
      checkpoint: { dir, everySteps: 100 },
      onWarning: (m) => warnings.push(m),
      onStep: (e) => {
        if (e.step === 2) {
          expect(process.listenerCount("SIGINT")).toBe(listeners + 1);
          process.emit("SIGINT");
        }
      },
    });
    expect(process.listenerCount("SIGINT")).toBe(listeners);
    expect(process.listenerCount("SIGTERM")).toBe(termListeners);
    expect(result).toMatchObject({ reason: "signal", signal: "SIGINT", steps: 3 });
    expect(warnings.join("\n")).toMatch(/SIGINT received/);
    expect(sink.of("checkpoint")).toMatchObject([{ reason: "signal", step: 2 }]);
    expect(sink.of("end")).toMatchObject([{ reason: "signal", steps: 3 }]);
    expect(result.checkpoint).toBe(join(dir, "checkpoint-00000003.safetensors"));

    const losses: number[] = [];
    await fit(recipe(), regressionLoader(4), {
      maxSteps: 8,
      sinks: [],
      checkpoint: { dir },
      resume: true,
      onStep: (e) => {
        losses.push(e.loss);
      },
    });
    expect(losses).toHaveLength(5);
    losses.forEach((l, i) => {
      expect(Math.abs(l - reference[3 + i])).toBeLessThanOrEqual(1e-5 * Math.abs(reference[3 + i]));
    });
  });

  it("stops when its AbortSignal is aborted, with a checkpoint", async () => {
    const dir = tmp();
    const controller = new AbortController();
    const result = await fit(recipe(), regressionLoader(4), {
      maxSteps: 8,
      sinks: [],
      checkpoint: { dir },
      signal: controller.signal,
      onStep: (e) => {
        if (e.step === 1) controller.abort();
      },
    });
    expect(result).toMatchObject({ reason: "aborted", steps: 2 });
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([2]);
  });

  it("stops at its time budget (maxSeconds) after the current step, with a 'time-budget' checkpoint", async () => {
    const dir = tmp();
    const sink = new MemorySink();
    const result = await fit(recipe(), regressionLoader(4), {
      maxSteps: 1000,
      maxSeconds: 0.2,
      sinks: [sink],
      checkpoint: { dir },
      // ~50 ms a step: the budget ends the run after about 4 of its 1,000 steps.
      onStep: () => new Promise<void>((resolve) => setTimeout(resolve, 50)),
    });
    expect(result.reason).toBe("time-budget");
    expect(result.steps).toBeGreaterThanOrEqual(2);
    expect(result.steps).toBeLessThan(1000);
    expect(result.elapsedSec).toBeGreaterThanOrEqual(0.2);
    const ck = sink.of("checkpoint");
    expect(ck.map((e) => [e.reason, e.step + 1])).toEqual([["time-budget", result.steps]]);
    expect(sink.of("end")[0].reason).toBe("time-budget");
    // Steps carry the budget's end so that progress displays can honour it in their ETA.
    for (const e of sink.of("step")) expect(e.budgetEndSec).toBeCloseTo(0.2, 9);
    await expect(fit(recipe(), regressionLoader(4), { epochs: 1, maxSeconds: 0 })).rejects.toThrow(
      /options\.maxSeconds: expected .*got 0/,
    );
  });
});

describe("fit: guards", () => {
  it("stops on a non-finite loss naming the step and terms, leaving the last good checkpoint intact", async () => {
    const dir = tmp();
    const r = recipe();
    r.nanAt.add(5);
    const sink = new MemorySink();
    const before = tf.memory().numTensors;
    const err = await fit(r, regressionLoader(4), {
      maxSteps: 10,
      sinks: [sink],
      checkpoint: { dir, everySteps: 2, keepLast: 2 },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteLossError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/non-finite loss at step 5: loss = NaN/);
    expect(msg).toMatch(/mse = NaN/);
    expect(msg).toMatch(/half = \d/);
    expect(msg).toMatch(/non-finite term\(s\): mse/);
    expect((err as NonFiniteLossError).step).toBe(5);
    expect(tf.memory().numTensors).toBe(before);
    // No checkpoint after the bad step, not even at the end; the step-4 one is complete.
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([2, 4]);
    expect(readFileSync(join(dir, "latest"), "utf8").trim()).toBe(
      "checkpoint-00000004.safetensors",
    );
    const ck = await loadCheckpointFile(join(dir, "checkpoint-00000004.safetensors"));
    expect(ck.progress.step).toBe(4);
    ck.dispose();
    expect(sink.of("end")[0]).toMatchObject({ reason: "error" });
    expect(sink.of("end")[0].error).toMatch(/step 5/);
    expect(sink.closed).toBe(1);
    expect(sink.of("step").map((e) => e.step)).toEqual([0, 1, 2, 3, 4]);
  });

  it("warns once when a recipe leaks tensors across steps", async () => {
    const r = recipe();
    r.leak = true;
    const warnings: string[] = [];
    const sink = new MemorySink();
    await fit(r, regressionLoader(4), {
      maxSteps: 8,
      sinks: [sink],
      onWarning: (m) => warnings.push(m),
    });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/tensor leak: tf\.memory\(\)\.numTensors grew from \d+ to \d+/);
    expect(sink.of("warning")).toHaveLength(1);
  });

  it("does not warn for a recipe that does not leak", async () => {
    const warnings: string[] = [];
    await fit(recipe(), regressionLoader(4), {
      maxSteps: 8,
      sinks: [],
      onWarning: (m) => warnings.push(m),
    });
    expect(warnings).toEqual([]);
  });

  it("throws a TensorLeakError with leakCheck.action 'error'", async () => {
    const r = recipe();
    r.leak = true;
    await expect(
      fit(r, regressionLoader(4), { maxSteps: 20, sinks: [], leakCheck: { action: "error" } }),
    ).rejects.toBeInstanceOf(TensorLeakError);
  });

  it("tolerates a bounded number of extra tensors with leakCheck.tolerance", async () => {
    const r = recipe();
    const held: tf.Tensor[] = [];
    const warnings: string[] = [];
    await fit(r, regressionLoader(4), {
      maxSteps: 12,
      sinks: [],
      onWarning: (m) => warnings.push(m),
      leakCheck: { tolerance: 2 },
      onStep: (e: StepEvent) => {
        // Like a prefetch queue: holds 0, 1 or 2 tensors, never more.
        while (held.length > e.step % 3) held.pop()!.dispose();
        while (held.length < e.step % 3) held.push(tf.scalar(0));
      },
    });
    tf.dispose(held);
    expect(warnings).toEqual([]);
  });
});

describe("fit of @sit/train (a web page's)", () => {
  it("trains with the same loop: the same losses as Node's fit", async () => {
    const losses: number[] = [];
    const result = await fitInPage(recipe(), regressionLoader(3), {
      maxSteps: 5,
      sinks: [],
      onStep: (e) => {
        losses.push(e.loss);
      },
    });
    expect(result).toMatchObject({ reason: "completed", steps: 5 });
    expect(losses).toEqual(await straightLosses(5, 3));
  });

  it("refuses checkpoints in a folder and says where they are", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-fit-"));
    await expect(
      fitInPage(recipe(), regressionLoader(2), { epochs: 1, checkpoint: { dir }, sinks: [] }),
    ).rejects.toThrow(
      /options\.checkpoint: checkpoints in a folder need Node; use fit from @sit\/train\/node/,
    );
    await expect(
      fitInPage(recipe(), regressionLoader(2), { epochs: 1, resume: dir, sinks: [] }),
    ).rejects.toThrow(/options\.resume: checkpoints in a folder need Node/);
  });
});
