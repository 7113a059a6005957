// webgpu: the host time of the flat AdamW (per-tensor clipping, as SiT) plus the flat EMA of a
// teacher, per step, against the number of parameter tensors they update, at the same total size.
// Both kernels do a fixed number of dispatches, but gather, scatter and track each tensor (a
// buffer copy each way, mirrors, tfjs inputs): this measures that per-tensor cost, the part of a
// SiT step's host time that packing a block's 12 parameters into fewer tensors would remove.
// Each size runs `--rounds` times, alternating, in one process (a loaded machine slows both
// alike). Host time: from the step's start until the submit of its commands returns (the GPU's
// work excluded: each step's read waits for it outside the span). Prints one JSON object.
//
//   LP_NUM_THREADS=1 npx tsx tools/bench/flat-tensors.ts [--tensors 168,14] [--params 5500000]
//     [--steps 25] [--rounds 2]
import { loadavg } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { AdamW } from "../../packages/core/src/index";
import { initBackend } from "../../packages/core/src/node";
import { settleBufferPool, webgpuFlatEma } from "../../packages/kernels/src/index";
import { webgpuInternals } from "../../packages/kernels/src/webgpu/flat-buffers";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const counts = option("tensors", "168,14").split(",").map(Number);
const total = Number(option("params", "5500000"));
const steps = Number(option("steps", "25"));
const rounds = Number(option("rounds", "2"));
for (const [name, v] of Object.entries({ total, steps, rounds }))
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer`);
if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > total))
  throw new Error(`--tensors: expected positive integers up to --params, got ${counts}`);
const warmup = Math.min(5, steps - 1);

await initBackend("webgpu", { allowSoftwareAdapter: true, log: () => {} });
const b = webgpuInternals(tf.backend());

/** Median host ms per step of AdamW + EMA over `n` tensors of about total / n elements. */
async function run(n: number): Promise<number> {
  const sizes = Array.from(
    { length: n },
    (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0),
  );
  const params = sizes.map((s, i) => [`p${i}`, tf.variable(tf.randomNormal([s]))] as const);
  const teacher = sizes.map((s) => tf.variable(tf.randomNormal([s]), false));
  const grads = Object.fromEntries(sizes.map((s, i) => [`p${i}`, tf.randomNormal([s])]));
  const opt = new AdamW(
    params.map(([k, v]) => [k, v]),
    { lr: 1e-3, clipPerTensor: 3 },
  );
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    settleBufferPool();
    const t0 = performance.now();
    opt.setLr(1e-3 / (s + 1));
    opt.step(grads);
    const next = webgpuFlatEma(
      teacher,
      params.map(([, v]) => v),
      0.99 + s * 1e-4,
    );
    next.forEach((t, k) => {
      if (!t) return;
      teacher[k].assign(t);
      t.dispose();
    });
    b.ensureCommandEncoderReady();
    b.submitQueue();
    times.push(performance.now() - t0);
    await params[0][1].data();
  }
  opt.dispose();
  tf.dispose([...params.map(([, v]) => v), ...teacher, ...Object.values(grads)]);
  const steady = times.slice(warmup).sort((x, y) => x - y);
  return Math.round(steady[Math.floor(steady.length / 2)] * 100) / 100;
}

const loadStart = loadavg();
const medians: Record<string, number[]> = Object.fromEntries(
  counts.map((n) => [`tensors_${n}`, []]),
);
for (let r = 0; r < rounds; r++) for (const n of counts) medians[`tensors_${n}`].push(await run(n));
console.log(
  JSON.stringify({
    bench: "flat_tensors",
    params: total,
    steps,
    warmup,
    host_ms_median_per_round: medians,
    loadavg_start: loadStart,
    loadavg_end: loadavg(),
    note: "Host ms of one AdamW (per-tensor clipping) + EMA step, until its submit returns; median of the steps after the warm-up, per round.",
  }),
);
process.exit(0);
