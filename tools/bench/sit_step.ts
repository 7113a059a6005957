// One SiT (v3) training step — GMML corruption of both views, student on the corrupted views,
// EMA teacher on the clean views, contrastive + λ·masked-L1 loss, per-tensor clipping, AdamW, EMA
// update — through @sit/recipes' `createSiT(...).trainStep`, at ViT-Tiny/4, 32 px, batch 64
// (D 192, depth 12, 3 heads; projection head hidden 4096, out 256; reconstruction head), beside the
// same step in PyTorch (tools/bench/sit_step_torch.py with Debian's /usr/bin/python3, 2 threads),
// measured in the same run. Prints one JSON object: step ms and images/s, the GMML drawing's share,
// tfjs kernel launches per step (tf.profile), peak memory, and the ratio tfjs / PyTorch.
//
//   npx tsx tools/bench/sit_step.ts [--backend wasm|cpu|webgpu] [--iters 3] [--warmup 1]
//     [--batch 64] [--torch-iters 3] [--torch-warmup 1] [--no-torch] [--checkpoint-blocks on|off]
//
// wasm: the 32-bit heap cannot hold depth 12's intermediates at batch 64, so blocks are recomputed
// in the backward pass there by default (`checkpointBlocks`, design.md); cpu is ≈ 1 GFLOP/s (one
// step takes minutes): use --iters 1 --warmup 0 there.
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, Rng, initBackend } from "../../packages/core/src/index";
import { corruptViews, createSiT } from "../../packages/recipes/src/index";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

const backend = option("backend", "wasm") as BackendName;
const BATCH = Number(option("batch", "64"));
const ITERS = Number(option("iters", backend === "cpu" ? "1" : "3"));
const WARMUP = Number(option("warmup", backend === "cpu" ? "0" : "1"));
const IMG = 32;
const PATCH = 4;
const checkpointBlocks = option("checkpoint-blocks", backend === "wasm" ? "on" : "off") === "on";

function benchTorch(): Record<string, unknown> {
  if (flag("no-torch")) return { available: false, note: "skipped (--no-torch)" };
  const script = fileURLToPath(new URL("./sit_step_torch.py", import.meta.url));
  const python = process.env.SIT_TORCH_PYTHON ?? "/usr/bin/python3";
  const args = [
    script,
    "--batch",
    String(BATCH),
    "--iters",
    option("torch-iters", "3"),
    "--warmup",
    option("torch-warmup", "1"),
    "--threads",
    "2",
  ];
  console.error(`[sit_step] PyTorch: ${python} ${args.join(" ")}`);
  const r = spawnSync(python, args, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.error || r.status !== 0)
    return {
      available: false,
      note: `${python} ${script} failed: ${r.error?.message ?? r.stderr.trim().split("\n").pop()}`,
    };
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
  } catch {
    return { available: false, note: `unparseable output: ${r.stdout.slice(0, 200)}` };
  }
}

/** The wasm module's heap size (its high-water mark: a wasm heap never shrinks), when visible. */
function wasmHeapBytes(): number | undefined {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength;
}

async function benchTfjs(): Promise<Record<string, unknown>> {
  const info = await initBackend(backend, { log: false });
  const c0 = performance.now();
  const recipe = createSiT({
    backbone: { preset: "tiny", imgSize: IMG, patchSize: PATCH, inChans: 3, checkpointBlocks },
    projection: { hidden: 4096, outDim: 256 },
    optim: { batchSize: BATCH, epochs: 100, stepsPerEpoch: 100 },
    lambda: 5,
  });
  const views = [0, 1].map(
    (i) => tf.randomNormal([BATCH, IMG, IMG, 3], 0, 1, "float32", 11 + i) as tf.Tensor4D,
  );
  const batch = { views };
  console.error(`[sit_step] ${info.name}: model built in ${Math.round(performance.now() - c0)} ms`);
  let step = 0;
  const run = () => {
    const t0 = performance.now();
    const r = recipe.trainStep(batch, step++);
    console.error(`[sit_step] ${info.name} step ${step}: ${Math.round(performance.now() - t0)} ms`);
    return r;
  };
  const w0 = performance.now();
  for (let i = 0; i < WARMUP; i++) run();
  const warmupMs = WARMUP > 0 ? (performance.now() - w0) / WARMUP : undefined;
  const tensorsBefore = tf.memory().numTensors;
  const times: number[] = [];
  let loss = Number.NaN;
  for (let i = 0; i < ITERS; i++) {
    const t0 = performance.now();
    loss = run().loss;
    times.push(performance.now() - t0);
  }
  const ms = times.reduce((a, b) => a + b, 0) / times.length;
  // The GMML drawing alone (typed-array loops on the CPU; part of trainStep above).
  const maskRng = Rng.seed(5);
  const m0 = performance.now();
  const { corrupted, masks } = corruptViews(recipe.masker, views, maskRng);
  const maskMs = performance.now() - m0;
  tf.dispose([...corrupted, ...masks]);
  // One more step under tf.profile: kernel launches and tfjs's peak bytes.
  const profile = await tf.profile(() => {
    run();
  });
  const kernels = profile.kernels.length;
  const byKernel = new Map<string, number>();
  for (const k of profile.kernels) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + 1);
  const top = [...byKernel.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
  const result: Record<string, unknown> = {
    backend: info.name,
    ...(info.threads !== undefined ? { threads: info.threads, simd: info.simd } : {}),
    ...(info.adapter ? { adapter: info.adapter } : {}),
    checkpoint_blocks: checkpointBlocks,
    iters: ITERS,
    warmup: WARMUP,
    ...(warmupMs !== undefined ? { first_step_ms: round(warmupMs) } : {}),
    step_ms: round(ms),
    step_ms_min: round(Math.min(...times)),
    images_per_s: round(BATCH / (ms / 1000), 2),
    gmml_drawing_ms: round(maskMs),
    kernel_launches_per_step: kernels,
    kernel_launches_top: Object.fromEntries(top),
    peak_tfjs_bytes_in_step: profile.peakBytes,
    tfjs_bytes_after_step: tf.memory().numBytes,
    ...(wasmHeapBytes() !== undefined ? { wasm_heap_bytes: wasmHeapBytes() } : {}),
    max_rss_mb: round(process.resourceUsage().maxRSS / 1024),
    tensors_leaked_per_step: (tf.memory().numTensors - tensorsBefore) / (ITERS + 1),
    loss_finite: Number.isFinite(loss),
    params: recipe.student.namedParameters().reduce((n, [, v]) => n + v.size, 0),
  };
  tf.dispose(views);
  recipe.dispose();
  return result;
}

const report: Record<string, unknown> = {
  bench: "sit_step",
  model: `SiT v3, ViT-Tiny/${PATCH} at ${IMG} px (D 192, depth 12, 3 heads), projection 4096 → 256, reconstruction head, EMA teacher, λ = 5`,
  batch: BATCH,
  node: process.version,
  tfjs: tf.version.tfjs,
  cpu: `${cpus()[0]?.model?.trim()} × ${cpus().length}`,
  loadavg_start: loadavg().map((x) => round(x, 2)),
};
// PyTorch first, while the machine is as quiet as it will be; then tfjs.
const torch = benchTorch();
report.tfjs = await benchTfjs();
report.torch = torch;
if (torch.available) {
  const t = report.tfjs as { step_ms: number };
  report.ratio_tfjs_over_torch = round(t.step_ms / (torch.step_ms as number), 2);
}
report.loadavg_end = loadavg().map((x) => round(x, 2));
report.note =
  "Step = trainStep (GMML drawing included; gmml_drawing_ms is its share) vs PyTorch's step on pre-drawn corruption (SiT draws it in data-loader workers). Timings on a shared 2-core machine: compare numbers from the same run only; loadavg shows the contention.";
console.log(JSON.stringify(report, null, 2));
