// TFLOP/s of the SiT step's GEMM shapes on webgpu: @sit/kernels' fused WGSL GEMM (with the
// epilogue the ViT uses: bias, GELU prologue, residual) against tfjs's own matMul (the product
// alone, same transpose flags), and PyTorch's torch.matmul on the same shapes in the same run
// (tools/bench/gemm_torch.py; fp32, TF32 off). Shapes per model, M = batch·tokens:
//   forward   x[M,K]·W[K,N]  patch (K = p²·3), qkv, proj (+ residual), fc1, fc2 (GELU input + residual)
//   dx        dy[M,N]·Wᵀ      (transposed B)
//   dW        xᵀ·dy           (transposed A, K = M)
// so K runs from 48 (patch 4) to 1536 (ViT-S fc2) and M up to batch·197. Each entry: median of
// --iters timed runs of --reps launches ended by a one-element read. Prints one JSON object.
//
//   npx tsx tools/bench/gemm-webgpu.ts [--model tiny|small|both] [--batch N] [--iters 5]
//     [--reps 10] [--allow-software-adapter] [--no-torch] [--torch-device cuda|cpu]
//     [--precision f32|mixed-f16]
// --precision mixed-f16 also times the f16 GEMM (f16 operands and result in f16 storage, f32
// accumulation, the same prologue and bias; no residual: the block adds it in f32) and reports its
// error against the f32 GEMM; PyTorch then also times the product in fp16 (what autocast runs).
// Both tile configurations of the fused GEMM are timed on every shape (fused64_ms, fused128_ms:
// gemm-wgsl.ts's 64 × 64 tile and gemm-wgsl-128.ts's 128 × 128), and fused_ms is the time of the
// one that setWebgpuGemmTile("auto") picks for the shape (tile_auto); the f16 GEMM likewise. Without
// shader-f16 on the adapter, --precision mixed-f16 only notes it (f16: "skipped: ...") and times
// the f32 GEMMs.
// On lavapipe (no GPU): LP_NUM_THREADS=1 ... --model tiny --batch 2 --iters 2 --reps 2 --no-torch
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../packages/core/src/index";
import { maxRelativeError } from "../../packages/testing/src/measure";
import { initBackend } from "../../packages/core/src/node";
import { checkPrecision, webgpuHasShaderF16 } from "../../packages/kernels/src/precision";
import {
  PLAIN_GEMM,
  gemmTileFor,
  setWebgpuGemmTile,
  webgpuGemm,
} from "../../packages/kernels/src/webgpu/gemm";
import {
  webgpuFromHalf,
  webgpuGemmHalf,
  webgpuToHalf,
} from "../../packages/kernels/src/webgpu/gemm-half";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);
const MODEL = option("model", "both");
const ITERS = Number(option("iters", "5"));
const REPS = Number(option("reps", "10"));
const PRECISION = option("precision", "f32");
const MODELS = {
  tiny: { tokens: 65, patches: 64, patchK: 48, d: 192, batch: 256 },
  small: { tokens: 197, patches: 196, patchK: 768, d: 384, batch: 64 },
} as const;
if (MODEL !== "both" && !(MODEL in MODELS))
  throw new Error(`--model: expected tiny, small or both, got ${MODEL}`);
for (const [k, v] of Object.entries({ ITERS, REPS }))
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`--${k.toLowerCase()}: expected a positive integer, got ${v}`);

/** One GEMM of the step: C[m,n] = op(A)·op(B), op(A) [m,k]. */
interface Shape {
  name: string;
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  gelu: boolean;
  bias: boolean;
  residual: boolean;
}

function shapesOf(model: keyof typeof MODELS): Shape[] {
  const c = MODELS[model];
  const batch = Number(option("batch", String(c.batch)));
  const m = batch * c.tokens;
  const d = c.d;
  const layers: [string, number, number, number, boolean, boolean][] = [
    // name, M, K, N, GELU input, residual
    ["patch", batch * c.patches, c.patchK, d, false, false],
    ["qkv", m, d, 3 * d, false, false],
    ["proj", m, d, d, false, true],
    ["fc1", m, d, 4 * d, false, false],
    ["fc2", m, 4 * d, d, true, true],
  ];
  const base = { transA: false, transB: false, gelu: false, bias: false, residual: false };
  return layers.flatMap(([name, rows, k, n, gelu, residual]) => [
    { ...base, name: `${model}.${name}.fwd`, m: rows, k, n, gelu, bias: true, residual },
    { ...base, name: `${model}.${name}.dx`, m: rows, k: n, n: k, transB: true },
    { ...base, name: `${model}.${name}.dW`, m: k, k: rows, n, transA: true, gelu },
  ]);
}

function randn(shape: number[], seed: number): tf.Tensor2D {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor2d(Rng.seed(seed).fillNormal(new Float32Array(n)), shape as [number, number]);
}

async function time(f: () => tf.Tensor): Promise<number> {
  const run = async () => {
    const t0 = performance.now();
    let last: tf.Tensor | undefined;
    for (let r = 0; r < REPS; r++) {
      last?.dispose();
      last = f();
    }
    const probe = tf.tidy(() => (last as tf.Tensor).reshape([-1]).slice([0], [1]));
    await probe.data();
    probe.dispose();
    last?.dispose();
    return (performance.now() - t0) / REPS;
  };
  await run(); // compile, warm up
  const times: number[] = [];
  for (let i = 0; i < ITERS; i++) times.push(await run());
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

function torchRun(shapes: Shape[]): Record<string, unknown> {
  if (flag("no-torch")) return { available: false, note: "skipped (--no-torch)" };
  const script = fileURLToPath(new URL("./gemm_torch.py", import.meta.url));
  const python =
    process.env.SIT_TORCH_PYTHON ??
    (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
  const args = [script, "--device", option("torch-device", "cuda"), "--iters", String(ITERS)];
  if (PRECISION === "mixed-f16") args.push("--fp16");
  const r = spawnSync(python, [...args, "--reps", String(REPS)], {
    input: JSON.stringify(shapes),
    encoding: "utf8",
    maxBuffer: 1 << 24,
  });
  if (r.error || r.status !== 0)
    return {
      available: false,
      note: `${python} ${script} failed: ${r.error?.message ?? r.stderr}`,
    };
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
  } catch {
    return { available: false, note: `unparseable output: ${r.stdout.slice(0, 200)}` };
  }
}

/**
 * The f16 GEMM on f16-stored operands: time, TFLOP/s, and its largest error against the f32 GEMM
 * relative to the output's largest magnitude (f16 rounding of operands and result: ≈ 1e-3).
 */
async function halfRow(
  s: Shape,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  flops: number,
  torchHalf: number | undefined,
): Promise<Record<string, unknown>> {
  const [ah, bh] = [webgpuToHalf(a), webgpuToHalf(b)];
  const opts = { transposeA: s.transA, transposeB: s.transB, geluA: s.gelu, bias };
  const tiles = await timeTiles(s, true, () => webgpuGemmHalf(ah, bh, opts).data);
  const ms = tiles.auto;
  const ref = webgpuGemm(a, b, opts);
  const out = webgpuGemmHalf(ah, bh, opts);
  const got = webgpuFromHalf(out);
  const [x, y] = [await got.data(), await ref.data()];
  let err = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    err = Math.max(err, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  // (tidy: the f16 result is an intermediate.)
  const diff128 = await tileDiff(() => tf.tidy(() => webgpuFromHalf(webgpuGemmHalf(ah, bh, opts))));
  tf.dispose([ah.data, bh.data, ref, out.data, got]);
  return {
    f16_tile_auto: tiles.tile,
    f16_ms: round(ms),
    f16_tflops: sig(flops / ms / 1e9),
    f16_64_ms: round(tiles[64]),
    f16_64_tflops: sig(flops / tiles[64] / 1e9),
    f16_128_ms: round(tiles[128]),
    f16_128_tflops: sig(flops / tiles[128] / 1e9),
    f16_128_diff_over_scale: sig(diff128),
    f16_max_err_over_scale: sig(err / scale),
    ...(typeof torchHalf === "number"
      ? { torch_fp16_ms: round(torchHalf), torch_fp16_tflops: sig(flops / torchHalf / 1e9) }
      : {}),
  };
}

/**
 * `f` timed with the 64 and with the 128 tile forced, and (the same measurement, not a third run)
 * the time of the tile that "auto" picks for the shape; "auto" again afterwards.
 */
async function timeTiles(
  s: Shape,
  half: boolean,
  f: () => tf.Tensor,
): Promise<{ 64: number; 128: number; auto: number; tile: 64 | 128 }> {
  const variant = {
    ...PLAIN_GEMM,
    transA: s.transA,
    transB: s.transB,
    geluA: s.gelu,
    bias: s.bias,
    residual: s.residual && !half, // (the f16 rows have no residual)
    ...(half ? { half: [] } : {}),
  };
  const tile = gemmTileFor(variant, s.m, s.n, s.k);
  try {
    setWebgpuGemmTile("64");
    const t64 = await time(f);
    setWebgpuGemmTile("128");
    const t128 = await time(f);
    return { 64: t64, 128: t128, auto: tile === 128 ? t128 : t64, tile };
  } finally {
    setWebgpuGemmTile("auto");
  }
}

/** Largest |x − y| over the largest |y|: the two tiles' results should agree to f32 rounding. */
async function diffOverScale(x: tf.Tensor, y: tf.Tensor): Promise<number> {
  return maxRelativeError(await x.data(), await y.data());
}

/** `f`'s result with the 128 tile against the 64 tile's (a check of the 128 tile on this GPU). */
async function tileDiff(f: () => tf.Tensor): Promise<number> {
  try {
    setWebgpuGemmTile("64");
    const small = f();
    setWebgpuGemmTile("128");
    const big = f();
    const d = await diffOverScale(big, small);
    tf.dispose([small, big]);
    return d;
  } finally {
    setWebgpuGemmTile("auto");
  }
}

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const sig = (x: number) => Number(x.toPrecision(3));

async function main() {
  const models = MODEL === "both" ? (["tiny", "small"] as const) : [MODEL as keyof typeof MODELS];
  const shapes = models.flatMap(shapesOf);
  const torch = torchRun(shapes);
  const info = await initBackend("webgpu", {
    allowSoftwareAdapter: flag("allow-software-adapter"),
    log: false,
  });
  // Without shader-f16 (Dawn on NVIDIA's Vulkan driver offers it only with a toggle) the f16 GEMM
  // cannot run: say so in the output and still time the f32 GEMMs.
  // (checkPrecision validates the value, and would throw for mixed-f16 without the feature.)
  if (PRECISION !== "mixed-f16") checkPrecision("--precision", PRECISION);
  const half = PRECISION === "mixed-f16" && webgpuHasShaderF16();
  const f16Note =
    PRECISION === "mixed-f16" && !half ? "skipped: the adapter has no shader-f16" : undefined;
  const torchMs = (torch.ms ?? {}) as Record<string, number>;
  const torchHalfMs = (torch.fp16_ms ?? {}) as Record<string, number>;
  const rows: Record<string, unknown>[] = [];
  for (const s of shapes) {
    const a = randn(s.transA ? [s.k, s.m] : [s.m, s.k], 1);
    const b = randn(s.transB ? [s.n, s.k] : [s.k, s.n], 2);
    const bias = s.bias ? (randn([1, s.n], 3).reshape([s.n]) as tf.Tensor1D) : null;
    const residual = s.residual ? randn([s.m, s.n], 4) : null;
    const flops = 2 * s.m * s.n * s.k;
    const opts = { transposeA: s.transA, transposeB: s.transB, geluA: s.gelu, bias, residual };
    const tiles = await timeTiles(s, false, () => webgpuGemm(a, b, opts));
    const fused = tiles.auto;
    const plain = await time(() => tf.matMul(a, b, s.transA, s.transB));
    const row: Record<string, unknown> = {
      shape: s.name,
      m: s.m,
      k: s.k,
      n: s.n,
      epilogue: [s.gelu && "gelu-in", s.bias && "bias", s.residual && "residual"].filter(Boolean),
      tile_auto: tiles.tile,
      fused_ms: round(fused),
      fused_tflops: sig(flops / fused / 1e9),
      fused64_ms: round(tiles[64]),
      fused64_tflops: sig(flops / tiles[64] / 1e9),
      fused128_ms: round(tiles[128]),
      fused128_tflops: sig(flops / tiles[128] / 1e9),
      fused128_diff_over_scale: sig(await tileDiff(() => webgpuGemm(a, b, opts))),
      tfjs_matmul_ms: round(plain),
      tfjs_matmul_tflops: sig(flops / plain / 1e9),
    };
    const t = torchMs[s.name];
    if (typeof t === "number") {
      row.torch_ms = round(t);
      row.torch_tflops = sig(flops / t / 1e9);
      row.fused_over_torch_tflops = round(t / fused, 2);
    }
    if (half) Object.assign(row, await halfRow(s, a, b, bias, flops, torchHalfMs[s.name]));
    rows.push(row);
    tf.dispose([a, b, ...(bias ? [bias] : []), ...(residual ? [residual] : [])]);
  }
  const total = (key: string) =>
    rows.reduce((sum, r) => sum + ((r[key] as number | undefined) ?? Number.NaN), 0);
  console.log(
    JSON.stringify(
      {
        bench: "gemm-webgpu",
        adapter: info.adapter,
        tfjs: tf.version.tfjs,
        iters: ITERS,
        reps: REPS,
        precision: PRECISION,
        ...(f16Note ? { f16: f16Note } : {}),
        note: "ms per launch (median of iters, each REPS launches + one read); TFLOP/s = 2·m·n·k / time. fused = @sit/kernels WGSL GEMM with the listed epilogue, on the tile that auto picks (tile_auto; fused64 / fused128: each tile forced, fused is one of those two measurements); tfjs_matmul = tf.matMul, product only; torch = torch.matmul fp32 (TF32 off), product only.",
        sum_ms: {
          fused: round(total("fused_ms")),
          fused64: round(total("fused64_ms")),
          fused128: round(total("fused128_ms")),
          tfjs_matmul: round(total("tfjs_matmul_ms")),
          ...(half
            ? {
                f16: round(total("f16_ms")),
                f16_64: round(total("f16_64_ms")),
                f16_128: round(total("f16_128_ms")),
              }
            : {}),
          ...(torch.available !== false ? { torch: round(total("torch_ms")) } : {}),
        },
        torch: { ...torch, ms: undefined },
        shapes: rows,
      },
      null,
      2,
    ),
  );
}
// Exit when done: on webgpu, Dawn's device keeps Node's event loop alive after the last output.
main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
