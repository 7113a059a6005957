// The main thread's on-CPU time of the host part of a SiT step on webgpu (from the step's start
// until the submit of its last commands returns, as sit_step.ts's host_ms), read in nanoseconds
// from /proc/<pid>/task/<pid>/schedstat (Linux). Unlike wall time it leaves out waits for a core:
// on a 2-core machine running lavapipe, the driver's thread and V8's GC helpers take turns with
// node, and the wall time swings from step to step. For before/after comparisons of host work.
// The same file gives the main thread's run-queue wait over the span (runnable, no core free),
// and the other threads' CPU time over it: what the wall time adds to the CPU time, and who took
// the cores meanwhile.
// The image size is a flag: a small image keeps the step's dispatches, kernel calls and host work
// and shortens the GPU's part (lavapipe: ≈ 5 s a step at 8 px against ≈ 10 s at 32 px).
// Synchronous steps (trainStep). Also the whole step's wall time, how many of Dawn's polls for
// finished GPU work ran as immediates and as the spacing's timers (SIT_DAWN_POLL_MS), and V8's
// garbage collections inside the host parts. Prints one JSON object.
//
// --count-native also counts and times, per step, the calls into the WebGPU implementation (Dawn's
// bindings in Node) that a step's host part makes most (buffer copies, dispatches, uploads,
// submits, bind groups): most of its host time, and a CPU Vulkan driver measures it as a GPU's
// would. The wrappers cost host time themselves (≈ 0.3 µs a call): leave it off for the host
// time. A loaded machine inflates the times (a submit waits for the driver's thread).
//
// --allocations samples V8's heap allocations over the timed steps (the inspector's sampling heap
// profiler, every 1 KB, collected objects included) and reports the bytes allocated per step in
// all and inside a step's synchronous part (under the recipe's launchStep: the host part the
// young-generation collections above run in; Dawn's polls while the GPU works are outside it).
// The profiler costs time: leave it off for the host time.
//
// --pin-main-thread pins, after the warm-up, the main thread to CPU 0 and every other thread
// (lavapipe's, V8's and Dawn's helpers) to CPU 1 (Linux, taskset): the main thread then has a core
// to itself, as beside a GPU, and its wall time is the host part's without the driver's contention.
//
// --ab-write-back compares, in the same process, steps with the flat AdamW's and EMA's copies
// back into each tensor's own buffer deferred (the default) and made at once
// (setWebgpuWriteBackDeferral(false)): `--steps` rounds, each one timed step of each setting in
// alternating order, every timed step after an untimed one of the same setting (switching
// settings writes the deferred tensors back once).
//
//   LP_NUM_THREADS=1 npx tsx tools/bench/host-cpu.ts [--img 8] [--batch 2] [--warmup 5] [--steps 12]
//     [--tag NAME] [--count-native] [--allocations] [--ab-write-back] [--pin-main-thread]
//     [--capture on|off] (the recipe's captured steps: on by default, replays after two recorded steps)
import { Session } from "node:inspector/promises";
import { loadavg } from "node:os";
import { PerformanceObserver, constants as perfConstants } from "node:perf_hooks";
import v8 from "node:v8";
import * as tf from "@tensorflow/tfjs";
import { isNativeFunction } from "../../packages/core/src/dawn-poll";
import { initBackend } from "../../packages/core/src/node";
import { setWebgpuWriteBackDeferral } from "../../packages/kernels/src/index";
import { SIT_BENCH_MODELS, benchViews, createBenchSiT, onLastSubmit } from "./sit-bench-model";
import {
  type ThreadTimes,
  cpuMsBetween,
  otherThreadsCpuMs,
  mainThreadTimes,
  pinMainThreadAlone,
} from "./thread-time";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const mainThread = (): ThreadTimes => mainThreadTimes("host-cpu.ts");

// Native callbacks that ran as immediates: Dawn's polls for finished GPU work, counted beneath the
// spacing that initBackend installs (SIT_DAWN_POLL_MS, @sit/core's dawn-poll.ts), which turns
// its re-polls into timers: so this counts the polls that were not spaced, and the timers count
// those that were.
let nativeImmediates = 0;
let nativeTimers = 0;
const setImmediateBefore = globalThis.setImmediate;
globalThis.setImmediate = ((callback: (...a: unknown[]) => void, ...args: unknown[]) => {
  if (isNativeFunction(callback)) nativeImmediates++;
  return setImmediateBefore(callback, ...args);
}) as typeof setImmediate;
const setTimeoutBefore = globalThis.setTimeout;
globalThis.setTimeout = ((callback: (...a: unknown[]) => void, ...args: unknown[]) => {
  if (isNativeFunction(callback)) nativeTimers++;
  return setTimeoutBefore(callback, ...(args as [number]));
}) as typeof setTimeout;

/**
 * Wrap the WebGPU methods a step calls most often (the classes Dawn's package put on globalThis)
 * with counters and timers; returns the calls and their milliseconds by `Class.method`.
 */
function countNativeCalls(): Map<string, { calls: number; ms: number }> {
  const counts = new Map<string, { calls: number; ms: number }>();
  const methods: Record<string, string[]> = {
    GPUCommandEncoder: ["copyBufferToBuffer", "beginComputePass", "finish"],
    GPUComputePassEncoder: ["setPipeline", "setBindGroup", "dispatchWorkgroups"],
    GPUQueue: ["writeBuffer", "submit"],
    GPUDevice: ["createBindGroup", "createBuffer", "createCommandEncoder"],
  };
  for (const [cls, names] of Object.entries(methods)) {
    const proto = (
      globalThis as unknown as Record<string, { prototype?: Record<string, unknown> }>
    )[cls]?.prototype;
    if (!proto) throw new Error(`--count-native: no ${cls} class on globalThis`);
    for (const name of names) {
      const f = proto[name] as (...a: unknown[]) => unknown;
      const entry = { calls: 0, ms: 0 };
      counts.set(`${cls}.${name}`, entry);
      proto[name] = function (this: unknown, ...a: unknown[]) {
        const t0 = performance.now();
        const result = f.apply(this, a);
        entry.ms += performance.now() - t0;
        entry.calls++;
        return result;
      };
    }
  }
  return counts;
}

const img = Number(option("img", "8"));
const batch = Number(option("batch", "2"));
const warmup = Number(option("warmup", "5"));
const steps = Number(option("steps", "12"));
await initBackend("webgpu", { allowSoftwareAdapter: true, log: () => {} });
const nativeCalls = process.argv.includes("--count-native") ? countNativeCalls() : undefined;
const model = { ...SIT_BENCH_MODELS.tiny, img, name: `ViT-Tiny/4 at ${img} px` };
const recipe = createBenchSiT(model as never, batch);
// --capture off: every step through tfjs (default on: the recipe's captured steps, replays).
recipe.stepCapture.enabled = option("capture", "on") !== "off";
const data = { views: benchViews(model as never, batch) };
let wallEnd = 0;
let threadEnd: ThreadTimes = { cpuMs: 0, waitMs: 0 };
let othersEnd = new Map<string, number>();
onLastSubmit(recipe, () => {
  wallEnd = performance.now();
  threadEnd = mainThread();
  othersEnd = otherThreadsCpuMs();
});
const loadStart = loadavg();
for (let s = 0; s < warmup; s++) await recipe.trainStep(data as never, s);
// (After the warm-up, when the driver's and V8's threads exist: threads born later inherit the
// pin of the thread that starts them.)
const pinnedThreads = process.argv.includes("--pin-main-thread") ? pinMainThreadAlone() : null;
const tensors = tf.memory().numTensors;
const wall: number[] = [];
const cpu: number[] = [];
const runQueueWait: number[] = [];
// Per timed step: the other threads' CPU over its host part, in all and per thread.
const othersCpu: number[] = [];
const othersByThread: number[][] = [];
const stepWall: number[] = [];
const [immediatesBefore, timersBefore] = [nativeImmediates, nativeTimers];
const inspector = process.argv.includes("--allocations") ? new Session() : null;
if (inspector) {
  inspector.connect();
  await inspector.post("HeapProfiler.startSampling", {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  } as never);
}
// Counted over the timed steps only.
for (const entry of nativeCalls?.values() ?? []) Object.assign(entry, { calls: 0, ms: 0 });
let stepIndex = warmup;
// V8's garbage collections (perf_hooks), to count those that ran inside a timed host part.
const collections: { start: number; ms: number; young: boolean }[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    collections.push({
      start: e.startTime,
      ms: e.duration,
      young:
        (e as unknown as { detail?: { kind?: number } }).detail?.kind ===
        perfConstants.NODE_PERFORMANCE_GC_MINOR,
    });
}).observe({ entryTypes: ["gc"] });
const hostSpans: [number, number][] = [];
async function timedStep(): Promise<void> {
  const others0 = otherThreadsCpuMs();
  const main0 = mainThread();
  const t0 = performance.now();
  await recipe.trainStep(data as never, stepIndex++);
  stepWall.push(performance.now() - t0);
  wall.push(wallEnd - t0);
  cpu.push(threadEnd.cpuMs - main0.cpuMs);
  runQueueWait.push(threadEnd.waitMs - main0.waitMs);
  const spent = cpuMsBetween(others0, othersEnd).sort((a, b) => b - a);
  othersCpu.push(spent.reduce((a, b) => a + b, 0));
  othersByThread.push(spent);
  hostSpans.push([t0, wallEnd]);
}
const quantile = (a: number[], p: number) =>
  [...a].sort((x, y) => x - y)[Math.floor(p * (a.length - 1))];
const round = (x: number) => Math.round(x * 10) / 10;
const abCpu = { deferred: [] as number[], eager: [] as number[] };
if (process.argv.includes("--ab-write-back")) {
  for (let r = 0; r < steps; r++)
    for (const setting of r % 2
      ? (["deferred", "eager"] as const)
      : (["eager", "deferred"] as const)) {
      setWebgpuWriteBackDeferral(setting === "deferred");
      await recipe.trainStep(data as never, stepIndex++);
      await timedStep();
      abCpu[setting].push(cpu[cpu.length - 1]);
    }
  setWebgpuWriteBackDeferral(true);
} else for (let s = 0; s < steps; s++) await timedStep();
interface SampledNode {
  callFrame: { functionName: string };
  selfSize: number;
  children: SampledNode[];
}
/** Bytes allocated in all and under a frame named `launchStep`, per timed step. */
async function sampledAllocations(): Promise<{ all: number; inStep: number } | null> {
  if (!inspector) return null;
  const { profile } = (await inspector.post("HeapProfiler.stopSampling")) as unknown as {
    profile: { head: SampledNode };
  };
  let all = 0;
  let inStep = 0;
  const walk = (n: SampledNode, under: boolean) => {
    const here = under || n.callFrame.functionName === "launchStep";
    all += n.selfSize;
    if (here) inStep += n.selfSize;
    for (const c of n.children) walk(c, here);
  };
  walk(profile.head, false);
  return { all: all / steps, inStep: inStep / steps };
}
const allocations = await sampledAllocations();
// (Entries arrive asynchronously: let the observer see the last step's.)
await new Promise((resolve) => setTimeout(resolve, 20));
const inHost = collections.filter((c) => hostSpans.some(([a, b]) => c.start >= a && c.start <= b));
const newSpace = v8.getHeapSpaceStatistics().find((x) => x.space_name === "new_space");
const summary = (a: number[]) => ({
  median: round(quantile(a, 0.5)),
  p25: round(quantile(a, 0.25)),
  mean: round(a.reduce((x, y) => x + y, 0) / a.length),
  all: a.map(round),
});
const ab =
  abCpu.deferred.length > 0
    ? {
        ab_write_back_host_cpu_ms: {
          deferred: summary(abCpu.deferred),
          eager: summary(abCpu.eager),
          // Per round, eager − deferred (the rounds pair steps run back to back).
          saved_median: round(
            quantile(
              abCpu.eager.map((e, i) => e - abCpu.deferred[i]),
              0.5,
            ),
          ),
        },
      }
    : {};
console.log(
  JSON.stringify({
    bench: "host_cpu",
    tag: option("tag", ""),
    step_capture: { enabled: recipe.stepCapture.enabled, ...recipe.stepCapture.status },
    model: model.name,
    batch,
    warmup,
    steps,
    pinned:
      pinnedThreads === null
        ? "no"
        : `main thread on CPU 0, the ${pinnedThreads} other threads on CPU 1`,
    write_back:
      abCpu.deferred.length > 0
        ? "alternating deferred and eager (the host_* figures cover both; see ab_write_back_host_cpu_ms)"
        : "deferred",
    host_cpu_ms_median: round(quantile(cpu, 0.5)),
    host_cpu_ms_p25: round(quantile(cpu, 0.25)),
    host_cpu_ms_min: round(quantile(cpu, 0)),
    host_cpu_ms_mean: round(cpu.reduce((a, b) => a + b, 0) / cpu.length),
    host_ms_median: round(quantile(wall, 0.5)),
    host_ms_p25: round(quantile(wall, 0.25)),
    host_ms_min: round(quantile(wall, 0)),
    host_runqueue_wait_ms_median: round(quantile(runQueueWait, 0.5)),
    // (Means over the timed steps: `--ab-write-back` times two a round.)
    host_runqueue_wait_ms_mean: round(
      runQueueWait.reduce((a, b) => a + b, 0) / runQueueWait.length,
    ),
    other_threads_cpu_ms_in_host_mean: round(
      othersCpu.reduce((a, b) => a + b, 0) / othersCpu.length,
    ),
    // The busiest other threads' CPU in a host part, each step's threads ranked by it, mean per rank.
    other_threads_cpu_ms_in_host_by_rank: Array.from({ length: 6 }, (_, r) =>
      round(othersByThread.reduce((a, t) => a + (t[r] ?? 0), 0) / othersByThread.length),
    ),
    step_ms_median: round(quantile(stepWall, 0.5)),
    gc_in_host_per_step: round(inHost.length / hostSpans.length),
    gc_in_host_ms_per_step: round(inHost.reduce((x, c) => x + c.ms, 0) / hostSpans.length),
    young_gc_in_host_per_step: round(inHost.filter((c) => c.young).length / hostSpans.length),
    new_space_bytes_at_end: newSpace?.space_size ?? null,
    ...(allocations
      ? {
          allocated_bytes_per_step: Math.round(allocations.all),
          allocated_bytes_in_step_host_part: Math.round(allocations.inStep),
        }
      : {}),
    native_immediates_per_step: Math.round((nativeImmediates - immediatesBefore) / steps),
    native_timers_per_step: Math.round((nativeTimers - timersBefore) / steps),
    ...(nativeCalls
      ? {
          webgpu_calls_per_step: Object.fromEntries(
            [...nativeCalls].map(([name, e]) => [name, round(e.calls / steps)]),
          ),
          webgpu_call_ms_per_step: Object.fromEntries(
            [...nativeCalls].map(([name, e]) => [name, Math.round((e.ms / steps) * 1000) / 1000]),
          ),
        }
      : {}),
    dawn_poll_ms: process.env.SIT_DAWN_POLL_MS ?? "default",
    ...ab,
    tensors_leaked_per_step: (tf.memory().numTensors - tensors) / (stepIndex - warmup),
    loadavg_start: loadStart,
    loadavg_end: loadavg(),
    host_cpu_ms: cpu.map(round),
    host_ms: wall.map(round),
    host_runqueue_wait_ms: runQueueWait.map(round),
    // Per timed step, in host_cpu_ms's order: the collections inside its host part.
    gc_in_host: hostSpans.map(
      ([a, b]) => collections.filter((c) => c.start >= a && c.start <= b).length,
    ),
    note: "host_cpu_ms: the main thread's on-CPU time (schedstat) from the step's start until the submit of its last commands returns; host_ms: the wall time of the same span; host_runqueue_wait_ms: the main thread's time in it runnable but without a core (schedstat), so host_ms ≈ host_cpu_ms + host_runqueue_wait_ms + any sleep; other_threads_cpu_ms_in_host_*: the CPU time the process's other threads (lavapipe's, V8's and Dawn's helpers) ran in the same span, in all and ranked per step. Synchronous steps. step_ms_median: the whole step, read included. native_immediates_per_step: native callbacks run as immediates (Dawn's unspaced polls); native_timers_per_step: as timers (its spaced polls). gc_in_host_*: V8's garbage collections that started inside a timed host part (count and wall milliseconds per step; young: scavenges); gc_in_host: their count in each timed step. new_space_bytes_at_end: V8's young generation then: V8 shrinks it when the process allocates below 1,000 bytes per ms (its heap.cc), as a lavapipe step's 5 s do and a GPU's ≈ 0.1 s step would not, so on lavapipe the host part's scavenges run on a 1 MB young generation.",
  }),
);
process.exit(0);
