import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { EventBase, StepEvent } from "../events";
import { ConsoleProgressSink } from "./console";
import { formatDuration } from "./format";
import { JsonlSink } from "./jsonl";

const base = (step: number): EventBase => ({
  step,
  epoch: 0,
  elapsedSec: step + 1,
  wallTime: 0,
});

const stepEvent = (step: number, loss = 0.5): StepEvent => ({
  ...base(step),
  epoch: Math.floor(step / 5),
  type: "step",
  loss,
  terms: { contrastive: 0.25, reconstruction: 0.05 },
  lr: 5e-4,
  images: 32,
  imagesPerSec: 64,
  stepMs: 400,
  dataMs: 100,
  tensors: 10,
  totalSteps: 10,
  stepsPerEpoch: 5,
});

function captureStream(isTTY: boolean) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns: 200, write: (s: string) => chunks.push(s) } };
}

describe("ConsoleProgressSink", () => {
  it("on a TTY keeps one line updated in place, and prints other events on lines of their own", () => {
    const { chunks, stream } = captureStream(true);
    let now = 0;
    const sink = new ConsoleProgressSink({ stream, now: () => now, redrawMs: 100 });
    sink.onEvent({ ...base(-1), type: "start", recipe: "sit", startStep: 0, totalSteps: 10 });
    for (let s = 0; s < 10; s++) {
      now += 60; // every other step is within redrawMs of the previous redraw
      sink.onEvent(stepEvent(s));
    }
    sink.onEvent({ ...base(9), type: "end", reason: "completed", steps: 10 });
    const progress = chunks.filter((c) => c.startsWith("\r\x1b[2K") && !c.endsWith("\n"));
    expect(progress.length).toBeGreaterThanOrEqual(5);
    expect(progress.length).toBeLessThan(10);
    const last = progress[progress.length - 1];
    expect(last).toContain("epoch 2/2");
    expect(last).toContain("100% 10/10");
    expect(last).toContain("[####################]");
    expect(last).toContain("loss 0.5 (contrastive 0.25, reconstruction 0.05)");
    expect(last).toContain("lr 5.00e-4");
    expect(last).toContain("64 img/s");
    expect(last).toContain("ETA 0s");
    expect(chunks[0]).toBe("training sit from step 0 of 10\n");
    expect(chunks[chunks.length - 1]).toMatch(/^completed after 10 steps in 10s\n$/);
  });

  it("without a TTY prints plain lines: the first step, then every intervalSec, and the last", () => {
    const { chunks, stream } = captureStream(false);
    let now = 0;
    const sink = new ConsoleProgressSink({ stream, now: () => now, intervalSec: 2 });
    for (let s = 0; s < 10; s++) {
      now += 500;
      sink.onEvent(stepEvent(s));
    }
    expect(chunks.every((c) => c.endsWith("\n") && !c.includes("\r"))).toBe(true);
    // first step (t=0.5s), t=2.5s, t=4.5s, and the last step (t=5s)
    expect(chunks.map((c) => /(\d+)\/10/.exec(c)?.[1])).toEqual(["1", "5", "9", "10"]);
    // ETA from the mean time per step since the first: 1 s/step here, 5 steps left at step 5.
    expect(chunks[1]).toContain("ETA 5s");
  });

  it("without a TTY ends each epoch with its final progress line, printed once", () => {
    const { chunks, stream } = captureStream(false);
    let now = 0;
    const sink = new ConsoleProgressSink({ stream, now: () => now, intervalSec: 100 });
    for (let s = 0; s < 5; s++) {
      now += 500;
      sink.onEvent(stepEvent(s));
    }
    sink.onEvent({ ...base(4), type: "epoch", steps: 5 });
    for (let s = 5; s < 10; s++) sink.onEvent(stepEvent(s));
    sink.onEvent({ ...base(9), type: "epoch", steps: 5 });
    expect(chunks.map((c) => /(\d+)\/10/.exec(c)?.[1])).toEqual(["1", "5", "10"]);
  });

  it("prints monitor results and checkpoints", () => {
    const { chunks, stream } = captureStream(false);
    const sink = new ConsoleProgressSink({ stream });
    sink.onEvent({ ...base(99), type: "monitor", metrics: { knn_top1: 0.7312 }, durationSec: 3 });
    sink.onEvent({ ...base(99), type: "checkpoint", path: "/x/c.safetensors", reason: "interval" });
    expect(chunks).toEqual([
      "monitor @ step 100 (epoch 1): knn_top1 0.7312 [3s]\n",
      "checkpoint (interval) @ step 100: /x/c.safetensors\n",
    ]);
  });

  it("takes the ETA from the time budget when it ends the run first, and says it stopped there", () => {
    const { chunks, stream } = captureStream(false);
    let now = 0;
    const sink = new ConsoleProgressSink({ stream, now: () => now, intervalSec: 0 });
    // 1 s per step and 10 steps planned; the budget ends at elapsedSec 4 (3 s after step 1).
    for (let s = 0; s < 2; s++) {
      now += 1000;
      sink.onEvent({ ...stepEvent(s), budgetEndSec: 4 });
    }
    expect(chunks[1]).toContain("ETA 2s (time budget)");
    // A budget that outlasts the planned steps leaves the step-based ETA alone.
    sink.onEvent({ ...stepEvent(2), budgetEndSec: 1000 });
    expect(chunks[2]).toMatch(/ETA 7s$/m);
    sink.onEvent({ ...base(2), type: "checkpoint", path: "/x/c", reason: "time-budget" });
    sink.onEvent({ ...base(2), type: "end", reason: "time-budget", steps: 3 });
    expect(chunks.slice(3)).toEqual([
      "checkpoint (time budget) @ step 3: /x/c\n",
      "stopped at its time budget after 3 steps in 3s\n",
    ]);
  });

  it("formats durations", () => {
    expect(formatDuration(45)).toBe("45s");
    expect(formatDuration(185)).toBe("3m05s");
    expect(formatDuration(7440)).toBe("2h04m");
    expect(formatDuration(Number.NaN)).toBe("?");
  });
});

describe("JsonlSink", () => {
  it("appends one JSON object per event, keeping non-finite numbers as strings", () => {
    const path = join(mkdtempSync(join(tmpdir(), "sit-jsonl-")), "sub", "metrics.jsonl");
    const a = new JsonlSink(path);
    a.onEvent(stepEvent(0, 1.5));
    // Written through to the OS at once: readable before close.
    expect(readFileSync(path, "utf8").split("\n")).toHaveLength(2);
    a.onEvent(stepEvent(1, Number.NaN));
    a.close();
    const b = new JsonlSink(path, { types: ["end"] });
    b.onEvent(stepEvent(2));
    b.onEvent({ ...base(2), type: "end", reason: "completed", steps: 3 });
    b.close();
    const lines = readFileSync(path, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.type)).toEqual(["step", "step", "end"]);
    expect(lines[0].loss).toBe(1.5);
    expect(lines[0].terms).toEqual({ contrastive: 0.25, reconstruction: 0.05 });
    expect(lines[1].loss).toBe("NaN");
    expect(lines[2].steps).toBe(3);
  });
});
