// Profile one SiT (v3) training step (ViT-Tiny/4 at 32 px, projection 4096 → 256, the same
// configuration as tools/bench/sit_step.ts) with tf.profile, split into phases: teacher forward
// (clean views, outside the tape), student forward + losses (on the tape), backward, optimiser
// (clipping + AdamW) and EMA. Prints one JSON object: per phase the kernel launches and summed
// kernel time, the top kernels by time and by count, and the top (kernel, input shapes) pairs.
//
//   npx tsx tools/bench/profile-step.ts [--backend wasm|cpu|webgpu] [--batch 64] [--depth 12] [--warmup 1]
//     [--top 12] [--checkpoint-blocks on|off] [--no-overrides] [--shapes-of Identity,Transpose]
//
// Phase boundaries come from hooks on this step only: the engine's startTape/endTape (the outer
// tf.grads) and the recipe's optimizer.step / teacher.update. Kernel times are what tfjs's profiler
// measures per kernel (wall time on cpu/wasm); they do not include tfjs's per-op engine overhead,
// which `untimed_ms` (step wall time − summed kernel time) shows.
import { loadavg } from "node:os";
import * as tf from "@tensorflow/tfjs";
import type { BackendName } from "../../packages/core/src/index";
import { initBackend } from "../../packages/core/src/node";
import { listKernelOverrides, setWasmKernels } from "../../packages/kernels/src/index";
import { createSiT } from "../../packages/recipes/src/index";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

const backend = option("backend", "wasm") as BackendName;
const BATCH = Number(option("batch", "64"));
const DEPTH = Number(option("depth", "12"));
const WARMUP = Number(option("warmup", "1"));
const TOP = Number(option("top", "12"));
const IMG = 32;
const PATCH = 4;
const SHAPES_OF = option("shapes-of", "")
  .split(",")
  .filter((s) => s.length > 0);
const checkpointBlocks = option("checkpoint-blocks", backend === "wasm" ? "on" : "off") === "on";

interface ProfiledKernel {
  name: string;
  kernelTimeMs: number | { error: string };
  inputShapes: number[][];
}

type Phase = "teacher_forward" | "student_forward" | "backward" | "optimizer" | "ema" | "other";

function summarise(kernels: ProfiledKernel[]) {
  const byName = new Map<string, { count: number; ms: number }>();
  const byShape = new Map<string, { count: number; ms: number }>();
  let total = 0;
  for (const k of kernels) {
    const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    total += ms;
    const a = byName.get(k.name) ?? { count: 0, ms: 0 };
    a.count++;
    a.ms += ms;
    byName.set(k.name, a);
    const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join(" ")}`;
    const b = byShape.get(key) ?? { count: 0, ms: 0 };
    b.count++;
    b.ms += ms;
    byShape.set(key, b);
  }
  const fmt = (e: [string, { count: number; ms: number }][]) =>
    Object.fromEntries(e.slice(0, TOP).map(([k, v]) => [k, { count: v.count, ms: round(v.ms) }]));
  const shapesOf = (name: string) =>
    fmt(
      [...byShape.entries()]
        .filter(([k]) => k.startsWith(`${name} `))
        .sort((x, y) => y[1].ms - x[1].ms),
    );
  return {
    ...(SHAPES_OF.length > 0
      ? { shapes_of: Object.fromEntries(SHAPES_OF.map((n) => [n, shapesOf(n)])) }
      : {}),
    launches: kernels.length,
    kernel_ms: round(total),
    top_by_time: fmt([...byName.entries()].sort((x, y) => y[1].ms - x[1].ms)),
    top_by_count: fmt([...byName.entries()].sort((x, y) => y[1].count - x[1].count)),
    top_shapes_by_time: fmt([...byShape.entries()].sort((x, y) => y[1].ms - x[1].ms)),
  };
}

const info = await initBackend(backend, { log: false });
if (process.argv.includes("--no-overrides")) {
  setWasmKernels(false);
}
const recipe = createSiT({
  backbone: {
    ...{ preset: "tiny", depth: DEPTH, imgSize: IMG, patchSize: PATCH, inChans: 3 },
    checkpointBlocks,
  },
  projection: { hidden: 4096, outDim: 256 },
  optim: { batchSize: BATCH, epochs: 100, stepsPerEpoch: 100 },
  lambda: 5,
});
const views = [0, 1].map(
  (i) => tf.randomNormal([BATCH, IMG, IMG, 3], 0, 1, "float32", 11 + i) as tf.Tensor4D,
);
let step = 0;
for (let i = 0; i < WARMUP; i++) await recipe.trainStep({ views }, step++);

// Phase marks: index into the active profile's kernel list where each phase begins.
const engine = tf.engine() as unknown as {
  state: { activeProfile: { kernels: unknown[] }; gradientDepth: number };
  startTape: () => void;
  endTape: () => void;
};
const marks: [number, Phase][] = [[0, "teacher_forward"]];
const mark = (phase: Phase) => {
  if (!marks.some(([, p]) => p === phase))
    marks.push([engine.state.activeProfile.kernels.length, phase]);
};
const origStart = engine.startTape.bind(engine);
const origEnd = engine.endTape.bind(engine);
engine.startTape = () => {
  if (engine.state.gradientDepth === 0) mark("student_forward");
  origStart();
};
engine.endTape = () => {
  origEnd();
  if (engine.state.gradientDepth === 0) mark("backward");
};
const optimizer = recipe.optimizer as unknown as { step: (g: unknown) => unknown };
const origStep = optimizer.step.bind(optimizer);
optimizer.step = (g) => {
  mark("optimizer");
  return origStep(g);
};
const teacher = (
  recipe as unknown as { ema: { teacher: { update: (...a: unknown[]) => unknown } } }
).ema.teacher;
const origUpdate = teacher.update.bind(teacher);
teacher.update = (...a) => {
  mark("ema");
  const r = origUpdate(...a);
  mark("other");
  return r;
};

const t0 = performance.now();
const profile = await tf.profile(async () => {
  await recipe.trainStep({ views }, step++);
});
const wallMs = performance.now() - t0;
engine.startTape = origStart;
engine.endTape = origEnd;

const kernels = profile.kernels as unknown as ProfiledKernel[];
const phases: Record<string, ReturnType<typeof summarise>> = {};
const sorted = [...marks].sort((a, b) => a[0] - b[0]);
for (let i = 0; i < sorted.length; i++) {
  const [from, phase] = sorted[i];
  const to = i + 1 < sorted.length ? sorted[i + 1][0] : kernels.length;
  phases[phase] = summarise(kernels.slice(from, to));
}
const all = summarise(kernels);
console.log(
  JSON.stringify(
    {
      bench: "profile_step",
      model: `SiT v3, ViT-Tiny/${PATCH} at ${IMG} px, depth ${DEPTH}, projection 4096 → 256, batch ${BATCH}`,
      backend: info.name,
      ...(info.threads !== undefined ? { threads: info.threads, simd: info.simd } : {}),
      checkpoint_blocks: checkpointBlocks,
      overrides: listKernelOverrides().filter((o) => o.backend === info.name),
      loadavg: loadavg().map((x) => round(x, 2)),
      profiled_step_wall_ms: round(wallMs),
      untimed_ms: round(wallMs - all.kernel_ms),
      total: all,
      phases,
      note: "Profiled step (profiler overhead included in the wall time). Phases from hooks on the outer tape and the recipe's optimizer/EMA; with checkpointed blocks the backward phase includes the recomputed block forwards.",
    },
    null,
    2,
  ),
);
recipe.dispose();
tf.dispose(views);
// Exit when done: on webgpu, Dawn's device keeps Node's event loop alive after the last output.
process.exit(0);
