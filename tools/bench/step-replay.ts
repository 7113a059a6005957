// The host-time floor of a SiT step on webgpu: how much of its host part (from the step's start
// until the submit of its last commands returns, as sit_step.ts's host_ms) is the WebGPU calls
// themselves, and how much the JavaScript that decides them (tfjs's engine and tape, the kernels'
// own code, the optimizer's and EMA's bookkeeping, V8's collections of what they allocate).
//
// After the warm-up it records two consecutive steps' WebGPU calls (webgpu-calls.ts), compares
// them (the same calls on the same pipelines, bind groups and buffers, and which writes carry
// bytes that differ: the step's per-step inputs), then alternates, in one process, a normal step
// and a raw replay of the second recording: the same calls, with no tfjs and no kernel code. Each
// is timed as the main thread's CPU (schedstat, Linux) and wall time. A replay also redoes the
// step's work on the GPU (the optimizer's update included), so the weights drift from the normal
// run's: a timing, nothing else. The GMML masks of a step are drawn on the host in either case
// (a replay cannot know them): their CPU time is measured on its own, on the same shapes.
//
// What a replay leaves is what a step captured once and replayed (as CUDA graphs do) would cost
// the host, give or take the writes of its per-step inputs.
//
//   LP_NUM_THREADS=1 npx tsx tools/bench/step-replay.ts --allow-software-adapter [--img 8] [--batch 2]
//     [--warmup 12] [--steps 12]
// (--allow-software-adapter: lavapipe; without it a GPU adapter is required.) The GPU pack runs it
// as its replay_tiny stage.
import { loadavg } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../packages/core/src/index";
import { initBackend } from "../../packages/core/src/node";
import { planStackedViews } from "../../packages/gmml/src/corrupt-views";
import { SIT_BENCH_MODELS, benchViews, createBenchSiT, onLastSubmit } from "./sit-bench-model";
import { mainThreadTimes } from "./thread-time";
import { compareWebgpuCalls, countWebgpuCalls, recordWebgpuCalls } from "./webgpu-calls";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
function count(name: string, fallback: number, least: number): number {
  const v = Number(option(name, String(fallback)));
  if (!Number.isInteger(v) || v < least)
    throw new Error(
      `step-replay --${name}: expected an integer ≥ ${least}, got ${option(name, "")}`,
    );
  return v;
}

const img = count("img", 8, 4);
const batch = count("batch", 2, 1);
const warmup = count("warmup", 12, 1);
const steps = count("steps", 12, 2);

const cpuMs = (): number => mainThreadTimes("step-replay.ts").cpuMs;

const load0 = loadavg();
await initBackend("webgpu", {
  allowSoftwareAdapter: process.argv.includes("--allow-software-adapter"),
  log: () => {},
});
const model = { ...SIT_BENCH_MODELS.tiny, img, name: `ViT-Tiny/4 at ${img} px` };
const recipe = createBenchSiT(model as never, batch);
// The floor under the step as tfjs runs it: the recipe's own captured steps (which this bench's
// measurements led to) off.
recipe.stepCapture.enabled = false;
const data = { views: benchViews(model as never, batch) };
const b = tf.backend() as unknown as {
  device: { queue: { onSubmittedWorkDone(): Promise<void> }; createCommandEncoder(): object };
};

// The host part: from the step's start until its last submit (the read's) returns.
let spanEnd: { cpu: number; wall: number } | null = null;
onLastSubmit(recipe, () => {
  spanEnd = { cpu: cpuMs(), wall: performance.now() };
});
let step = 0;
for (; step < warmup; step++) await recipe.trainStep(data, step);

const recorder = recordWebgpuCalls(tf.backend());
const recordings = [];
for (let r = 0; r < 2; r++) {
  // (On an empty queue: the recording starts with the step's own command encoder.)
  await b.device.queue.onSubmittedWorkDone();
  recorder.start();
  await recipe.trainStep(data, step++);
  recordings.push(recorder.stop());
}
const comparison = compareWebgpuCalls(recordings[0].calls, recordings[1].calls);
const replayed = recordings[1];

const normal = { cpu: [] as number[], wall: [] as number[] };
const replay = { cpu: [] as number[], wall: [] as number[] };
for (let i = 0; i < steps; i++) {
  const c0 = cpuMs();
  const w0 = performance.now();
  spanEnd = null;
  await recipe.trainStep(data, step++);
  const end = spanEnd as { cpu: number; wall: number } | null;
  if (!end) throw new Error("step-replay: the step's read was not seen");
  normal.cpu.push(end.cpu - c0);
  normal.wall.push(end.wall - w0);
  const r0 = cpuMs();
  const q0 = performance.now();
  recorder.replay(replayed.calls);
  replay.wall.push(performance.now() - q0);
  replay.cpu.push(cpuMs() - r0);
  await b.device.queue.onSubmittedWorkDone();
}

// GMML's masks for the step's two views, drawn as the recipe draws them (its masker, its shapes).
const shape = data.views[0].shape as [number, number, number, number];
const rng = Rng.seed(1);
// Timed as one span (a draw at 8 px is far below schedstat's tick), after a few untimed draws.
const draws = 100;
for (let i = 0; i < 10; i++) planStackedViews(recipe.masker, shape, 2, rng);
const g0 = cpuMs();
for (let i = 0; i < draws; i++) planStackedViews(recipe.masker, shape, 2, rng);
const gmmlMean = (cpuMs() - g0) / draws;

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2;
};
const r2 = (x: number) => Math.round(x * 100) / 100;
const normalMean = mean(normal.cpu);
const floorMean = mean(replay.cpu) + gmmlMean;
console.log(
  JSON.stringify(
    {
      bench: "step_replay",
      model: model.name,
      batch,
      warmup,
      steps,
      calls_per_step: countWebgpuCalls(replayed),
      recordings_make_the_same_calls: comparison.sameCalls,
      first_difference: comparison.firstDifference ?? null,
      calls_differing_per_step: comparison.differingCalls,
      writes_varying_per_step: comparison.varyingWrites.length,
      bytes_varying_per_step: comparison.varyingBytes,
      host_cpu_ms_mean: r2(normalMean),
      host_cpu_ms_median: r2(median(normal.cpu)),
      host_ms_median: r2(median(normal.wall)),
      replay_cpu_ms_mean: r2(mean(replay.cpu)),
      replay_cpu_ms_median: r2(median(replay.cpu)),
      replay_ms_median: r2(median(replay.wall)),
      gmml_draw_cpu_ms_mean: r2(gmmlMean),
      replay_share_of_host_cpu: r2(mean(replay.cpu) / normalMean),
      floor_share_of_host_cpu: r2(floorMean / normalMean),
      load_before: load0.map(r2),
      load_after: loadavg().map(r2),
      per_step: { host_cpu_ms: normal.cpu.map(r2), replay_cpu_ms: replay.cpu.map(r2) },
      note: "host_cpu_ms: the main thread's CPU (schedstat) over a normal step's host part (from its start until the submit of its last commands returns); replay_cpu_ms: over a raw replay of one recorded step's WebGPU calls (the same encoders, passes, dispatches, copies, writes and submits; no tfjs, no kernel JavaScript), alternated with the normal steps in one process. gmml_draw_cpu_ms: drawing the step's GMML masks on the host (their plan: pixel sources, noise, masks), which a replay would still do; the mean of 100 draws timed as one span. floor_share_of_host_cpu: (replay + GMML drawing) / normal: what a step captured once and replayed would leave of the host part. schedstat brings a running thread's time up to date at scheduler ticks (4 ms here): single steps are off by up to a tick, means over many steps much less. calls_differing_per_step: calls of the same kind in the same place made on other objects (a bind group over other buffers of tfjs's pool, mostly) in two consecutive steps: a captured step would need buffers of its own. writes_varying_per_step: writes whose bytes differ between the two steps (the per-step inputs a captured step would have to write).",
    },
    null,
    2,
  ),
);
process.exit(0);
