// ViT-Tiny/4 at 32 px, batch 64: forward and forward+backward time on the wasm and cpu backends,
// beside the same step in PyTorch (tools/bench/vit_torch.py, Debian's /usr/bin/python3), and the
// effect of @sit/kernels' custom gradients (plain matMuls) against tfjs's own autodiff (matMul
// with transpose flags) on wasm. `npx tsx tools/bench/vit.ts [--backends wasm,cpu]
// [--wasm-iters 3] [--cpu-iters 1] [--torch-iters 5] [--batch 64] [--no-torch] [--no-autodiff]`
// prints one JSON object. The cpu backend runs ≈ 1 GFLOP/s (≈ 50 GFLOP per forward here): keep
// its iterations at 1.
import { spawnSync } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, Rng } from "../../packages/core/src/index";
import { initBackend } from "../../packages/core/src/node";
import {
  type KernelSignatures,
  multiHeadAttention,
  linear,
  registerKernelOverride,
} from "../../packages/kernels/src/index";
import { vitTiny } from "../../packages/vit/src/index";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const BATCH = Number(option("batch", "64"));
const IMG = 32;
const PATCH = 4;
const backends = option("backends", "wasm,cpu").split(",") as BackendName[];
const iters: Record<string, number> = {
  wasm: Number(option("wasm-iters", "3")),
  cpu: Number(option("cpu-iters", "1")),
};

/** Mean wall time of `fn` over `n` runs after `warmup` runs (fn must finish its work before returning). */
async function timeMs(fn: () => Promise<void>, n: number, warmup: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return (performance.now() - t0) / n;
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

// tfjs's own gradients for the two ops @sit/kernels writes out by hand: registered as overrides,
// they turn the model back into the "autodiff" version (matMul with transposeA/transposeB in the
// backward pass) without touching it.
const autodiffLinear: KernelSignatures["linear"] = (x, w, b) =>
  tf.tidy(() => (b ? tf.add(tf.matMul(x, w), b) : tf.matMul(x, w)) as tf.Tensor2D);
const autodiffPackedAttention: KernelSignatures["packedSelfAttention"] = (qkv, o) =>
  tf.tidy(() => {
    const [b, n, d3] = qkv.shape;
    const d = d3 / 3;
    const heads = (t: tf.Tensor) =>
      tf.transpose(tf.reshape(t, [b, n, o.numHeads, d / o.numHeads]), [0, 2, 1, 3]);
    const q = heads(tf.slice(qkv, [0, 0, 0], [b, n, d]));
    const k = heads(tf.slice(qkv, [0, 0, d], [b, n, d]));
    const v = heads(tf.slice(qkv, [0, 0, 2 * d], [b, n, d]));
    const p = tf.softmax(tf.mul(tf.matMul(q, k, false, true), o.scale));
    const out = tf.reshape(tf.transpose(tf.matMul(p, v), [0, 2, 1, 3]), [b, n, d]) as tf.Tensor3D;
    return { output: out };
  });

function withAutodiff<T>(backend: string, fn: () => Promise<T>): Promise<T> {
  const off = [
    registerKernelOverride("linear", backend, autodiffLinear),
    registerKernelOverride("packedSelfAttention", backend, autodiffPackedAttention),
  ];
  return fn().finally(() => {
    for (const f of off) f();
  });
}

async function benchModel(backend: BackendName) {
  await initBackend(backend, { log: false });
  // wasm's 32-bit heap cannot hold depth 12's intermediates at batch 64: recompute blocks there.
  const checkpointBlocks = backend === "wasm";
  const model = vitTiny({ imgSize: IMG, patchSize: PATCH, rng: Rng.seed(0), checkpointBlocks });
  const images = tf.randomNormal([BATCH, IMG, IMG, 3], 0, 1, "float32", 1);
  const n = iters[backend] ?? 1;
  const warmup = backend === "cpu" ? 0 : 1;
  const forward = async () => {
    const tokens = tf.tidy(() => model.forward(images).tokens);
    await tokens.data();
    tokens.dispose();
  };
  const forwardBackward = async () => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.square(model.forward(images).tokens)) as tf.Scalar,
      );
      tf.dispose(grads);
      return value;
    });
    await loss.data();
    loss.dispose();
  };
  const fwd = await timeMs(forward, n, warmup);
  const fwdBwd = await timeMs(forwardBackward, n, warmup);
  const result: Record<string, unknown> = {
    iters: n,
    warmup,
    // getThreadsCount() reports XNNPACK's pool size, but without the threaded binary (which tfjs
    // never picks under Node) there are no worker threads behind it.
    ...(backend === "wasm"
      ? { threaded_build: await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT") }
      : {}),
    checkpoint_blocks: checkpointBlocks,
    forward_ms: round(fwd),
    forward_images_per_s: round(BATCH / (fwd / 1000), 2),
    forward_backward_ms: round(fwdBwd),
    forward_backward_images_per_s: round(BATCH / (fwdBwd / 1000), 2),
    tensors_after: tf.memory().numTensors,
  };
  if (backend === "wasm" && !flag("no-autodiff")) {
    const auto = await withAutodiff(backend, () => timeMs(forwardBackward, n, warmup));
    result.autodiff_forward_backward_ms = round(auto);
    result.custom_gradient_speedup = round(auto / fwdBwd, 2);
  }
  images.dispose();
  model.dispose();
  return result;
}

/** The two hand-written gradients alone, at ViT-Tiny/4 sizes (B·N = 64·65 rows). */
async function benchKernels(backend: BackendName) {
  await initBackend(backend, { log: false });
  const rows = BATCH * 65;
  const x = tf.randomNormal([rows, 192], 0, 1, "float32", 2);
  const w = tf.randomNormal([192, 768], 0, 0.05, "float32", 3);
  const b = tf.zeros([768]);
  const qkv = tf.randomNormal([BATCH, 65, 576], 0, 1, "float32", 4);
  const n = 3;
  const linearStep = async () => {
    const g = tf.tidy(() =>
      tf.grads((xi, wi, bi) => tf.sum(tf.square(linear(xi, wi, bi))))([x, w, b]),
    );
    await g[1].data();
    tf.dispose(g);
  };
  const attentionStep = async () => {
    const g = tf.tidy(() =>
      tf.grad((t: tf.Tensor) => tf.sum(tf.square(multiHeadAttentionPacked(t))))(qkv),
    );
    await g.data();
    g.dispose();
  };
  const multiHeadAttentionPacked = (t: tf.Tensor) => {
    const d = 192;
    const [bb, nn] = t.shape;
    return multiHeadAttention(
      tf.slice(t, [0, 0, 0], [bb, nn, d]),
      tf.slice(t, [0, 0, d], [bb, nn, d]),
      tf.slice(t, [0, 0, 2 * d], [bb, nn, d]),
      { numHeads: 3 },
    ).output;
  };
  const customLinear = await timeMs(linearStep, n, 1);
  const customAttention = await timeMs(attentionStep, n, 1);
  const offLinear = registerKernelOverride("linear", backend, autodiffLinear);
  const offAttention = registerKernelOverride("multiHeadAttention", backend, (q, k, v, o) =>
    autodiffPackedAttention(tf.concat([q, k, v], 2) as tf.Tensor3D, o),
  );
  const autoLinear = await timeMs(linearStep, n, 1);
  const autoAttention = await timeMs(attentionStep, n, 1);
  offLinear();
  offAttention();
  tf.dispose([x, w, b, qkv]);
  return {
    linear_4160x192x768_fwd_bwd: {
      custom_ms: round(customLinear),
      autodiff_ms: round(autoLinear),
      speedup: round(autoLinear / customLinear, 2),
    },
    attention_64x3x65x64_fwd_bwd: {
      custom_ms: round(customAttention),
      autodiff_ms: round(autoAttention),
      speedup: round(autoAttention / customAttention, 2),
    },
  };
}

function benchTorch(): Record<string, unknown> {
  if (flag("no-torch")) return { available: false, note: "skipped (--no-torch)" };
  const script = fileURLToPath(new URL("./vit_torch.py", import.meta.url));
  const python = process.env.SIT_TORCH_PYTHON ?? "/usr/bin/python3";
  const r = spawnSync(
    python,
    [script, "--batch", String(BATCH), "--iters", option("torch-iters", "5"), "--threads", "2"],
    {
      encoding: "utf8",
    },
  );
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

const report: Record<string, unknown> = {
  bench: "vit",
  model: `ViT-Tiny/${PATCH} at ${IMG}px (D 192, depth 12, 3 heads), loss mean(tokens²)`,
  batch: BATCH,
  node: process.version,
  tfjs: tf.version.tfjs,
  loadavg_start: loadavg().map((x) => round(x, 2)),
};
// PyTorch first, while the machine is as quiet as it will be; then the tfjs backends.
const torch = benchTorch();
const tfjs: Record<string, Record<string, unknown>> = {};
for (const backend of backends) tfjs[backend] = await benchModel(backend);
if (backends.includes("wasm") && !flag("no-autodiff"))
  report.kernels_wasm = await benchKernels("wasm");
report.tfjs = tfjs;
report.torch = torch;
if (torch.available) {
  const ratio: Record<string, unknown> = {};
  for (const [backend, r] of Object.entries(tfjs))
    ratio[backend] = {
      forward: round((r.forward_ms as number) / (torch.forward_ms as number), 2),
      forward_backward: round(
        (r.forward_backward_ms as number) / (torch.forward_backward_ms as number),
        2,
      ),
    };
  report.ratio_tfjs_over_torch = ratio;
}
report.loadavg_end = loadavg().map((x) => round(x, 2));
report.note =
  "wasm runs tfjs-backend-wasm's single-threaded SIMD build under Node (its thread probe returns false in Node; see design.md for the 2-thread workaround, not in @sit/core). Timings on a shared 2-core machine: compare numbers from the same run only.";
console.log(JSON.stringify(report, null, 2));
