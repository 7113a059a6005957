// The GPU dispatches of one SiT (v3) training step on webgpu, by shader, at any batch and on any
// adapter: the issue's "≤ 350 dispatches" target at the bench batches (ViT-Tiny/4 at 256, ViT-S/16
// at 64), which a software adapter cannot run in reasonable time. Prints one JSON object.
//
//   npx tsx tools/bench/step-dispatches.ts [--model tiny|small] [--batch 256] [--count-only]
//     [--allow-software-adapter]
//
// The count is what tools/bench/sit_step.ts reports as gpu_dispatches_per_step (tfjs programs run
// plus this package's directly encoded dispatches) for the second of two steps. With
// --count-only, @sit/kernels' own dispatches are recorded and counted but not issued (the GPU
// runs only tfjs's few programs, so a batch-256 step takes seconds on lavapipe), the losses are
// meaningless, and the device's storage binding limit reads as 2 GiB, as on a discrete GPU, so
// that the kernels take the paths they take there (lavapipe's 128 MiB sends ViT-S's batch-64
// blocks to the portable path); bind groups past the real limit are stand-ins, never bound.
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../packages/core/src/node";
import { issueDispatch } from "../../packages/kernels/src/webgpu/encode";
import { gpuProfiling } from "../../packages/kernels/src/webgpu/gpu-profile";
import {
  noteRawDispatch,
  rawDispatchCount,
  webgpuInternals,
} from "../../packages/kernels/src/webgpu/flat-buffers";
import { benchViews, createBenchSiT, sitBenchModel } from "./sit-bench-model";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const modelKey = option("model", "tiny");
const MODEL = sitBenchModel(modelKey);
const BATCH = Number(option("batch", modelKey === "tiny" ? "256" : "64"));
if (!(Number.isInteger(BATCH) && BATCH >= 1))
  throw new Error(`--batch: expected an integer ≥ 1, got ${option("batch", "")}`);
const countOnly = flag("count-only");

const info = await initBackend("webgpu", {
  log: false,
  allowSoftwareAdapter: flag("allow-software-adapter"),
});

interface Pass {
  setBindGroup(i: number, g: unknown, ...rest: unknown[]): void;
  dispatchWorkgroups(...a: number[]): void;
}
/** A bind group that is never bound (count-only: its dispatch is not issued). */
const standIn = { label: "count-only stand-in" };

if (countOnly) {
  const dev = (tf.backend() as unknown as { device: Record<string, unknown> }).device as {
    limits: Record<string, number>;
    createBindGroup(desc: {
      entries: { resource: { size?: number; buffer?: { size: number } } }[];
    }): unknown;
    createCommandEncoder(): { beginComputePass(): Pass & { end(): void }; finish(): unknown };
  };
  const real = dev.limits;
  const realLimit = real.maxStorageBufferBindingSize;
  const limits = new Proxy(real, {
    get: (t, k) => (k === "maxStorageBufferBindingSize" ? 2 ** 31 - 4 : t[k as string]),
  });
  Object.defineProperty(dev, "limits", { value: limits, configurable: true });
  const create = dev.createBindGroup.bind(dev);
  dev.createBindGroup = (desc) =>
    desc.entries.some((e) => (e.resource.size ?? e.resource.buffer?.size ?? 0) > realLimit)
      ? standIn
      : create(desc);
  // Passes skip stand-ins and the dispatch after one (the flat optimisers bind their parameters).
  const encoder = dev.createCommandEncoder();
  const first = encoder.beginComputePass();
  const proto = Object.getPrototypeOf(first) as Pass;
  first.end();
  encoder.finish();
  const skipping = new WeakMap<object, boolean>();
  const setBindGroup = proto.setBindGroup;
  const dispatch = proto.dispatchWorkgroups;
  proto.setBindGroup = function (this: Pass, i, g, ...rest) {
    skipping.set(this, g === standIn);
    if (g !== standIn) setBindGroup.call(this, i, g, ...rest);
  };
  proto.dispatchWorkgroups = function (this: Pass, ...a) {
    if (!skipping.get(this)) dispatch.apply(this, a);
  };
}

const recipe = createBenchSiT(MODEL, BATCH);
const views = benchViews(MODEL, BATCH);
const b = webgpuInternals(tf.backend());
const byShader = new Map<string, number>();
const note = (key: string) => byShader.set(key, (byShader.get(key) ?? 0) + 1);
const be = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
const runProgram = be.runWebGPUProgram;
let programs = 0;
be.runWebGPUProgram = (...a: unknown[]) => {
  note(`tfjs:${(a[0] as { constructor: { name: string } }).constructor.name}`);
  programs++;
  return runProgram.apply(be, a);
};
// encode.ts hands every dispatch to a GPU profile's recorder when one is set: this one names it,
// then issues it (or, count-only, counts it without issuing it).
type Recorder = { dispatch(key: string, p: unknown, g: unknown, wg: number[]): void };
const recorder: Recorder = {
  dispatch(key, p, group, wg) {
    note(key);
    if (countOnly) noteRawDispatch();
    else issueDispatch(b, p as never, group, wg as [number, number, number]);
  },
};
let dispatches = 0;
for (let step = 0; step < 2; step++) {
  byShader.clear();
  programs = 0;
  const raw0 = rawDispatchCount();
  (gpuProfiling as { recorder: unknown }).recorder = recorder;
  try {
    await recipe.trainStep({ views }, step);
  } finally {
    (gpuProfiling as { recorder: unknown }).recorder = null;
  }
  dispatches = rawDispatchCount() - raw0 + programs;
}
console.log(
  JSON.stringify(
    {
      bench: "step_dispatches",
      model: `SiT v3, ${MODEL.name}, depth ${MODEL.depth}, projection 4096 → 256`,
      batch: BATCH,
      adapter: info.adapter,
      count_only: countOnly,
      gpu_dispatches_per_step: dispatches,
      tfjs_programs_per_step: programs,
      by_shader: Object.fromEntries([...byShader.entries()].sort((p, q) => q[1] - p[1])),
    },
    null,
    1,
  ),
);
// (Dawn's device keeps the process alive.)
process.exit(0);
