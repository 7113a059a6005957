// CPU time of one SiT (v3) training step on wasm, per phase and per tfjs kernel: every kernel of the
// wasm backend is wrapped with process.cpuUsage() (the CPU time of all the process's threads, so
// XNNPACK's worker included), and the recipe's parts mark the phases (teacher forward, student
// forward, optimiser, EMA; the rest of the step is the backward, with any recomputed blocks).
// Same configuration as sit_step.ts / profile-step.ts (ViT-Tiny/4 at 32 px, projection 4096 → 256).
// Made for a shared, loaded machine: wall times there (and tf.profile's per-kernel wall times)
// swing several-fold with the load, CPU time much less; compare runs by CPU, interleaved.
//
//   npx tsx tools/bench/kernel-cpu.ts [--depth 12] [--batch 64] [--steps 2] [--top 25]
//     [--checkpoint-blocks on|off|k]
import { loadavg } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../packages/core/src/node";
import "../../packages/kernels/src/index";
import { createSiT } from "../../packages/recipes/src/index";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const DEPTH = Number(option("depth", "12"));
const BATCH = Number(option("batch", "64"));
const STEPS = Number(option("steps", "2"));
const TOP = Number(option("top", "25"));
const ck = option("checkpoint-blocks", "on");
const checkpointBlocks = ck === "on" ? true : ck === "off" ? false : Number(ck);
for (const [k, v] of Object.entries({ DEPTH, BATCH, STEPS, TOP }))
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`--${k.toLowerCase()}: expected a positive integer`);

const info = await initBackend("wasm", { log: false });
const recipe = createSiT({
  backbone: {
    preset: "tiny",
    depth: DEPTH,
    imgSize: 32,
    patchSize: 4,
    inChans: 3,
    checkpointBlocks,
  },
  projection: { hidden: 4096, outDim: 256 },
  optim: { batchSize: BATCH, epochs: 100, stepsPerEpoch: 100 },
  lambda: 5,
});
const views = [0, 1].map(
  (i) => tf.randomNormal([BATCH, 32, 32, 3], 0, 1, "float32", 11 + i) as tf.Tensor4D,
);

interface Usage {
  wall_ms: number;
  cpu_ms: number;
  sys_ms: number;
  minor_faults: number;
}
const usage = (): Usage => {
  const r = process.resourceUsage();
  const [user, sys] = [r.userCPUTime / 1000, r.systemCPUTime / 1000];
  return {
    wall_ms: performance.now(),
    cpu_ms: user + sys,
    sys_ms: sys,
    minor_faults: r.minorPageFault,
  };
};
const fields = ["wall_ms", "cpu_ms", "sys_ms", "minor_faults"] as const;

let phase = "backward";
let counting = false;
const phases = new Map<string, Usage>();
const kernels = new Map<string, Map<string, { calls: number; cpu_ms: number }>>();
const addUsage = (name: string, from: Usage, to: Usage, sign = 1) => {
  const a = phases.get(name) ?? { wall_ms: 0, cpu_ms: 0, sys_ms: 0, minor_faults: 0 };
  for (const f of fields) a[f] += sign * (to[f] - from[f]);
  phases.set(name, a);
};

// Every wasm kernel, timed by CPU (inclusive of nothing else: kernels call the heap directly).
for (const cfg of tf.getKernelsForBackend("wasm")) {
  const inner = cfg.kernelFunc;
  tf.unregisterKernel(cfg.kernelName, "wasm");
  tf.registerKernel({
    ...cfg,
    kernelFunc: ((args: { inputs: Record<string, tf.TensorInfo | undefined> }) => {
      if (!counting) return inner(args as never);
      const u0 = process.cpuUsage();
      try {
        return inner(args as never);
      } finally {
        const u = process.cpuUsage(u0);
        const shapes = Object.values(args.inputs)
          .filter((t): t is tf.TensorInfo => t !== undefined && t !== null)
          .map((t) => `[${t.shape}]`)
          .join(" ");
        const byKey = kernels.get(phase) ?? new Map();
        kernels.set(phase, byKey);
        const e = byKey.get(`${cfg.kernelName} ${shapes}`) ?? { calls: 0, cpu_ms: 0 };
        e.calls++;
        e.cpu_ms += (u.user + u.system) / 1000;
        byKey.set(`${cfg.kernelName} ${shapes}`, e);
      }
    }) as tf.KernelFunc,
  });
}

// Phase marks: the named parts' usage is also subtracted from the backward (the step's rest).
type Part = Record<string, (...a: unknown[]) => unknown>;
const parts: [Part | null, string, string][] = [
  [recipe.student as unknown as Part, "forward", "student_forward"],
  [recipe.teacherModule as unknown as Part, "forward", "teacher_forward"],
  [recipe.optimizer as unknown as Part, "step", "optimizer"],
  [(recipe as unknown as { teacher: Part }).teacher, "update", "ema"],
];
for (const [obj, method, name] of parts) {
  if (!obj || typeof obj[method] !== "function") continue;
  const original = obj[method].bind(obj);
  obj[method] = (...a: unknown[]) => {
    const [prev, u0] = [phase, usage()];
    phase = name;
    try {
      return original(...a);
    } finally {
      phase = prev;
      if (counting) {
        const u1 = usage();
        addUsage(name, u0, u1);
        addUsage("backward", u0, u1, -1);
      }
    }
  };
}

let step = 0;
await recipe.trainStep({ views }, step++); // warm-up: allocations, XNNPACK operators
const loadStart = loadavg();
counting = true;
for (let i = 0; i < STEPS; i++) {
  const u0 = usage();
  await recipe.trainStep({ views }, step++);
  const u1 = usage();
  addUsage("step", u0, u1);
  addUsage("backward", u0, u1);
}
counting = false;
const round = (x: number) => Math.round((x / STEPS) * 10) / 10;
const perStep = (u: Usage) => Object.fromEntries(fields.map((f) => [f, round(u[f])]));
const kernelTable = (byKey: Map<string, { calls: number; cpu_ms: number }>) => {
  const byName = new Map<string, { calls: number; cpu_ms: number }>();
  for (const [key, e] of byKey) {
    const name = key.split(" ")[0];
    const a = byName.get(name) ?? { calls: 0, cpu_ms: 0 };
    a.calls += e.calls;
    a.cpu_ms += e.cpu_ms;
    byName.set(name, a);
  }
  const top = (m: Map<string, { calls: number; cpu_ms: number }>) =>
    Object.fromEntries(
      [...m.entries()]
        .sort((a, b) => b[1].cpu_ms - a[1].cpu_ms)
        .slice(0, TOP)
        .map(([k, e]) => [k, { calls: e.calls / STEPS, cpu_ms: round(e.cpu_ms) }]),
    );
  const total = [...byKey.values()].reduce((s, e) => s + e.cpu_ms, 0);
  const calls = [...byKey.values()].reduce((s, e) => s + e.calls, 0);
  return {
    calls: calls / STEPS,
    kernel_cpu_ms: round(total),
    by_kernel: top(byName),
    by_shape: top(byKey),
  };
};
console.log(
  JSON.stringify(
    {
      bench: "kernel_cpu",
      model: `SiT v3, ViT-Tiny/4 at 32 px, depth ${DEPTH}, projection 4096 → 256, batch ${BATCH}`,
      backend: info.name,
      ...(info.threads !== undefined ? { threads: info.threads, simd: info.simd } : {}),
      checkpoint_blocks: checkpointBlocks,
      steps: STEPS,
      loadavg_start: loadStart.map((x) => Math.round(x * 100) / 100),
      loadavg_end: loadavg().map((x) => Math.round(x * 100) / 100),
      wasm_heap_bytes: (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8
        .length,
      per_step: Object.fromEntries([...phases.entries()].map(([k, u]) => [k, perStep(u)])),
      kernels: Object.fromEntries([...kernels.entries()].map(([k, m]) => [k, kernelTable(m)])),
      note: "Per step, averaged over the measured steps (after one warm-up). cpu_ms: all threads. backward = step − the named phases (includes recomputed blocks).",
    },
    null,
    2,
  ),
);
recipe.dispose();
tf.dispose(views);
