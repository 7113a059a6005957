// Where a SiT step's host time goes on webgpu: V8's sampling profiler runs over the host part of
// each timed step only — from the step's start until the submit that starts its loss read returns,
// as `fit` runs steps (the late read; tools/bench/sit_step.ts --late-read times the same span) —
// and the samples of all timed steps are summed: self time by function and by source file (tfjs
// core, tfjs's webgpu backend, each @sit package, Node internals, GC), and inclusive time for the
// project's own functions; with --focus, the inclusive time of everything a function calls. Same model and recipe as sit_step.ts (tools/bench/sit-bench-model.ts).
// Prints one JSON object.
//
//   npx tsx tools/bench/host-profile.ts --allow-software-adapter [--model tiny|small] [--batch 2]
//     [--warmup 3] [--iters 8] [--interval-us 100] [--top 40] [--focus FUNCTION] [--sync]
//
// --sync runs each step as trainStep (its loss awaited before the next starts): the GPU is idle
// while the host encodes, where on a 2-core machine the late read's lavapipe thread shares the
// host's core. On lavapipe use LP_NUM_THREADS=1 (the driver's thread then leaves node a core of the two).
// Sampling costs time of its own, so the span here is longer than sit_step's host_ms; the shares
// are what to read.
import { Session } from "node:inspector/promises";
import { loadavg } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../packages/core/src/node";
import { StepRunner } from "../../packages/train/src/step-runner";
import { benchViews, createBenchSiT, onLastSubmit, sitBenchModel } from "./sit-bench-model";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The part of the code base a script URL belongs to. */
function area(url: string, fn: string): string {
  if (url === "") return fn.startsWith("(") ? fn : "(native / V8)";
  if (url.startsWith("node:")) return "node internals";
  const pkg = /packages\/([^/]+)\/src\/(.*)$/.exec(url);
  if (pkg) return `@sit/${pkg[1]} ${pkg[2]}`;
  const dep = /node_modules\/(@[^/]+\/[^/]+|[^/]+)\/(.*)$/.exec(url);
  if (dep) return `${dep[1]} ${dep[2].replace(/^dist\//, "")}`;
  return url.replace(/^file:\/\/.*\/tools\//, "tools/");
}

const samplesMs = new Map<string, number>();
const filesMs = new Map<string, number>();
const inclusiveMs = new Map<string, number>();
// Native code (Dawn's bindings, V8 builtins) by the JavaScript function that called it.
const nativeMs = new Map<string, number>();
// --focus NAME: inclusive time of every function called (directly or not) by functions named NAME.
const focus = process.argv.includes("--focus") ? option("focus", "") : "";
const focusMs = new Map<string, number>();
let totalMs = 0;

/** Microseconds on the clock of V8's profile timestamps (the monotonic clock). */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/** Add one profile's samples from `fromUs` to `toUs` (µs, `nowUs`) to the sums. */
function accumulate(p: Profile, fromUs: number, toUs: number): void {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const add = (m: Map<string, number>, k: string, ms: number) => m.set(k, (m.get(k) ?? 0) + ms);
  let t = p.startTime;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) return;
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    totalMs += ms;
    const n = byId.get(id)!;
    const f = n.callFrame;
    const where = area(f.url, f.functionName);
    add(samplesMs, `${f.functionName || "(anonymous)"} ${where}:${f.lineNumber + 1}`, ms);
    add(filesMs, where, ms);
    if (f.url === "" && !f.functionName.startsWith("(")) {
      const up = parent.get(id);
      const c = up !== undefined ? byId.get(up)!.callFrame : undefined;
      if (c) add(nativeMs, `${c.functionName || "(anonymous)"} ${area(c.url, c.functionName)}`, ms);
    }
    // Inclusive time of the project's own functions (each counted once per sample).
    const seen = new Set<string>();
    const stack: string[] = [];
    let focused = false;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const c = byId.get(at)!.callFrame;
      if (focus && !focused) {
        if (c.functionName === focus) focused = true;
        else stack.push(`${c.functionName || "(anonymous)"} ${area(c.url, c.functionName)}`);
      }
      if (!c.url.includes("/packages/")) continue;
      const key = `${c.functionName || "(anonymous)"} ${area(c.url, "")}:${c.lineNumber + 1}`;
      if (!seen.has(key)) {
        seen.add(key);
        add(inclusiveMs, key, ms);
      }
    }
    if (focused) {
      add(focusMs, `${focus} (self)`, stack.length === 0 ? ms : 0);
      for (const k of new Set(stack)) add(focusMs, k, ms);
    }
  });
}

const top = (m: Map<string, number>, n: number, steps: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, ms]) => ({ name, ms_per_step: round(ms / steps), share: round(ms / totalMs, 3) }));

async function main() {
  const model = sitBenchModel(option("model", "tiny"));
  const batch = Number(option("batch", "2"));
  const warmup = Number(option("warmup", "3"));
  const iters = Number(option("iters", "8"));
  const interval = Number(option("interval-us", "100"));
  const n = Number(option("top", "40"));
  const sync = process.argv.includes("--sync");
  // (stdout carries only the JSON.)
  await initBackend("webgpu", {
    allowSoftwareAdapter: process.argv.includes("--allow-software-adapter"),
    log: (line: string) => process.stderr.write(`${line}\n`),
  });
  const recipe = createBenchSiT(model, batch);
  const batchData = { views: benchViews(model, batch) };
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval });
  // The step's last submit is the one that starts its loss read: stop sampling when it returns.
  let stop: (() => void) | undefined;
  onLastSubmit(recipe, () => stop?.());
  const runner = new StepRunner(recipe, true, { disposeBatches: false });
  const spans: number[] = [];
  for (let s = 0; s < warmup + iters; s++) {
    const timed = s >= warmup;
    let stopped: Promise<{ profile: Profile }> | undefined;
    let t0 = 0;
    let t0Us = 0;
    let t1Us = 0;
    if (timed) {
      await session.post("Profiler.start");
      stop = () => {
        t1Us = nowUs();
        spans.push(performance.now() - t0);
        stopped = session.post("Profiler.stop") as Promise<{ profile: Profile }>;
        stop = undefined;
      };
    }
    t0 = performance.now();
    t0Us = nowUs();
    if (sync) await recipe.trainStep(batchData, s);
    else await runner.run(batchData, s, 0);
    if (stopped) accumulate((await stopped).profile, t0Us, t1Us);
    process.stderr.write(`step ${s + 1}/${warmup + iters}\n`);
  }
  await runner.drain();
  console.log(
    JSON.stringify(
      {
        bench: "host_profile",
        model: model.name,
        batch,
        steps: iters,
        read: sync ? "each step's own, awaited (trainStep)" : "one step late (fit's StepRunner)",
        sampling_interval_us: interval,
        span_ms_mean: round(spans.reduce((a, b) => a + b, 0) / spans.length),
        span_ms_min: round(Math.min(...spans)),
        sampled_ms_per_step: round(totalMs / iters),
        by_file: top(filesMs, n, iters),
        by_function_self: top(samplesMs, n, iters),
        project_inclusive: top(inclusiveMs, n, iters),
        native_by_caller: top(nativeMs, n, iters),
        ...(focus ? { focus: { name: focus, inclusive: top(focusMs, n, iters) } } : {}),
        loadavg: loadavg().map((l) => round(l)),
        adapter: (tf.backend() as unknown as { adapterInfo?: unknown }).adapterInfo ?? null,
      },
      null,
      1,
    ),
  );
  recipe.dispose?.();
  // (Dawn's device keeps the event loop alive.)
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
