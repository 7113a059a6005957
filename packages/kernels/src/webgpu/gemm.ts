import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { type Scalars, type View, encode, viewOf } from "./encode";
import { type WebGpuInternals, newTensorInfo, webgpuInternals } from "./flat-buffers";
import { encodeSplitGemm, gemmSplitKSetting, sliceAreaFloats, splitKFor } from "./gemm-split";
import { type StridedSum, encodeStridedSums } from "./strided-sums";
import {
  type GemmTile,
  type GemmVariant,
  TILES,
  checkGemmVariant,
  gemmKey,
  gemmWgsl,
} from "./gemm-wgsl";
import { gemmWgsl128 } from "./gemm-wgsl-128";
import { registerWebgpuKernels } from "./program";

// A tiled GEMM family encoded directly on tfjs's compute pass (see flat-buffers.ts): one shader per
// variant (transposes, GELU or LayerNorm prologue, bias / GELU-derivative / residual epilogue,
// column sums), one pipeline per variant and device, shapes as uniforms. gemm-linear.ts builds
// SitLinear and its gradient on it, block.ts the fused block; SitGemm here exposes the raw family
// (no gradient) for benchmarks; gemm-ln.ts the LayerNorm prologue.

export const GEMM_KERNEL = "SitGemm";

const PLAIN: GemmVariant = {
  transA: false,
  transB: false,
  geluA: false,
  bias: false,
  geluGrad: false,
  residual: false,
  colSum: false,
  scaleRows: false,
  scaleB: false,
};

/** The plain variant (no transposes, prologue or epilogue); others spread over it. */
export const PLAIN_GEMM = PLAIN;

/** What {@link setWebgpuGemmTile} accepts: a tile for every GEMM, or the per-shape choice. */
export type GemmTileChoice = "auto" | "64" | "128";

let tileChoice: GemmTileChoice = "auto";

/**
 * Use the 64 or the 128 tile for every GEMM of this package, or back to the per-shape choice of
 * {@link gemmTileFor} with "auto" (for benchmarks and tests).
 */
export function setWebgpuGemmTile(choice: GemmTileChoice): void {
  if (choice !== "auto" && choice !== "64" && choice !== "128")
    throw new RangeError(
      `setWebgpuGemmTile choice: expected "auto", "64" or "128", got ${JSON.stringify(choice)}`,
    );
  tileChoice = choice;
}

/**
 * The settings that change how a GEMM is encoded (tile choice, split-K), as part of the key of a
 * recorded plan of GEMMs (encode-plan.ts).
 */
export function gemmSettingsKey(): string {
  return `${tileChoice}/${gemmSplitKSetting()}`;
}

/**
 * The fewest tiles of 128 for which "auto" picks the 128 tile. Not a GPU's worth: a product with
 * few output tiles and a long K (a weight gradient) is split along K (gemm-split.ts), which fills
 * the GPU either way; measured, the 128 tile won from 9 tiles up and lost on 4 (see below).
 */
const MIN_TILES_128 = 8;

/**
 * The tile of `variant` on a `[M, N, K]` product under the current choice. "auto" picks the 128
 * tile for f32 variants whose M and N are ≥ 128 and whose output has ≥ {@link MIN_TILES_128}
 * tiles of 128; else the 64 tile. Measured on an H200 (Dawn / Vulkan, tools/bench/gemm-webgpu.ts,
 * 2026-12-04, two runs of this kernel, each tile timed back to back on every shape of the
 * ViT-Tiny/4 batch-256 and ViT-S/16 batch-64 steps): the 128 tile was faster on every forward and
 * dx product (38 of 38 comparisons, 1.06 – 1.60×, median ≈ 1.3×; M 12.5 K – 16.6 K, N 192 – 1536,
 * the GELU prologue and K = 48 included) and on the weight gradients from 9 tiles of 128 up (16 of
 * 16, 1.12 – 1.66×), slower only on the 192 × 192 weight gradient (4 tiles: 0.88 – 0.90×). The f32
 * GEMM time of the 30 products: 64 tile 23.9 – 24.9 ms, 128 tile 18.2 – 18.6 ms. f16 stays on the
 * 64 tile (0.8 – 1.3×, no net gain; f16 has no split-K and its weight gradients ran 2× slower on
 * the 128 tile). The bench times both tiles on every shape (fused64_ms, fused128_ms), so this rule
 * can follow its numbers on other GPUs.
 */
export function gemmTileFor(variant: GemmVariant, m: number, n: number, _k: number): GemmTile {
  if (tileChoice !== "auto") return tileChoice === "128" ? 128 : 64;
  if (variant.half || m < 128 || n < 128) return 64;
  return Math.ceil(m / 128) * Math.ceil(n / 128) >= MIN_TILES_128 ? 128 : 64;
}

/**
 * Encode `variant` on `[M, N, K]` with the given tensors or buffer views (in {@link gemmBindings}
 * order), directly on tfjs's compute pass (encode.ts: cached WGSL, uniforms and bind groups).
 * `rowsPer`: rows per row factor (scaleRows, scaleB); `eps`: the LayerNorm prologue's (lnA).
 */
export function encodeGemm(
  b: WebGpuInternals,
  variant: GemmVariant,
  mnk: [number, number, number],
  operands: (tf.TensorInfo | View)[],
  rowsPer = 1,
  eps = 0,
): void {
  encodeStridedSums(b, encodeGemmDeferred(b, variant, mnk, operands, { rowsPer, eps }));
}

/** Where {@link encodeGemmDeferred} puts a split product's slices, and its scalars. */
export interface DeferredGemmOptions {
  rowsPer?: number;
  eps?: number;
  /** The slices' place ({@link gemmSliceFloats} floats, aligned); default a shared scratch. */
  area?: View;
}

/**
 * {@link encodeGemm}, except that a product split along K (gemm-split.ts) leaves the sums of its
 * slices to the caller: they are returned (none when unsplit) for one encodeStridedSums with
 * others. With several deferred at once, each needs an `area` of its own.
 */
export function encodeGemmDeferred(
  b: WebGpuInternals,
  variant: GemmVariant,
  [m, n, k]: [number, number, number],
  operands: (tf.TensorInfo | View)[],
  { rowsPer = 1, eps = 0, area }: DeferredGemmOptions = {},
): StridedSum[] {
  checkGemmVariant(variant);
  if (m === 0 || n === 0) return [];
  const tile = gemmTileFor(variant, m, n, k);
  const { BM, BN } = TILES[tile];
  const key = gemmKey(variant, tile);
  const groups: [number, number, number] = [Math.ceil(n / BN), Math.ceil(m / BM), 1];
  const limit = b.device.limits.maxComputeWorkgroupsPerDimension;
  if (groups[0] > limit || groups[1] > limit)
    throw new ShapeError(
      `${key}: a [${m}, ${k}]·[${k}, ${n}] product needs ${groups[1]} × ${groups[0]} workgroups; the device allows ${limit} per dimension`,
    );
  const views = operands.map((t) => ("offset" in t ? t : viewOf(b, t)));
  const one = (vs: View[], kSplit: number, slices: number) => {
    const uniforms: Scalars[] = [m, n, k, rowsPer, kSplit].map((i) => ({ i }));
    uniforms.push({ f: eps });
    const wgsl = () => (tile === 128 ? gemmWgsl128(variant) : gemmWgsl(variant));
    encode(b, key, wgsl, vs, uniforms, [groups[0], groups[1], slices]);
  };
  const split = splitKFor(variant, m, n, k, TILES[tile]);
  if (split.slices > 1) return encodeSplitGemm(b, variant, [m, n, k], views, split, one, area);
  one(views, split.kSplit, 1);
  return [];
}

/** Floats of the slices {@link encodeGemmDeferred} writes for `variant` on `[M, N, K]` (0: unsplit). */
export function gemmSliceFloats(variant: GemmVariant, [m, n, k]: [number, number, number]): number {
  if (m === 0 || n === 0) return 0;
  const tile = gemmTileFor(variant, m, n, k);
  const { slices } = splitKFor(variant, m, n, k, TILES[tile]);
  return slices > 1 ? sliceAreaFloats(variant, m, n, slices) : 0;
}

interface GemmAttrs {
  transA: boolean;
  transB: boolean;
  geluA: boolean;
}

function gemmForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: GemmAttrs;
  };
  const b = webgpuInternals(backend);
  const { a, b: bm, bias, residual } = inputs;
  const [m, k] = attrs.transA ? [a.shape[1], a.shape[0]] : a.shape;
  const n = attrs.transB ? bm.shape[0] : bm.shape[1];
  const c = newTensorInfo(b, [m, n]);
  const variant = { ...PLAIN, ...attrs, bias: !!bias, residual: !!residual };
  const tensors = [a, bm, ...(bias ? [bias] : []), ...(residual ? [residual] : []), c];
  if (m > 0 && n > 0) encodeGemm(b, variant, [m, n, k], tensors);
  return c;
}

let registered = false;

/** Register SitGemm with tfjs (once). */
export function registerGemmKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([[GEMM_KERNEL, gemmForward]]);
}

/** Options of {@link webgpuGemm}. */
export interface GemmOptions {
  transposeA?: boolean;
  transposeB?: boolean;
  geluA?: boolean;
  bias?: tf.Tensor1D | null;
  residual?: tf.Tensor2D | null;
}

/**
 * `pre(op(a))·op(b) (+ bias) (+ residual)` for 2-D `a`, `b` on webgpu in one dispatch (no
 * gradient: for benchmarks and as a building block).
 */
export function webgpuGemm(a: tf.Tensor2D, b: tf.Tensor2D, options: GemmOptions = {}): tf.Tensor2D {
  const transA = options.transposeA === true;
  const transB = options.transposeB === true;
  if (!(a instanceof tf.Tensor) || a.rank !== 2)
    throw new ShapeError(`gemm a: expected a rank-2 tensor, got ${describeValue(a)}`);
  if (!(b instanceof tf.Tensor) || b.rank !== 2)
    throw new ShapeError(`gemm b: expected a rank-2 tensor, got ${describeValue(b)}`);
  const k = transA ? a.shape[0] : a.shape[1];
  const kb = transB ? b.shape[1] : b.shape[0];
  if (k !== kb)
    throw new ShapeError(
      `gemm b: expected ${k} along its ${transB ? "second" : "first"} axis to match a's inner dimension, got shape [${b.shape}]`,
    );
  registerGemmKernels();
  const inputs: Record<string, tf.Tensor> = { a, b };
  if (options.bias) inputs.bias = options.bias;
  if (options.residual) inputs.residual = options.residual;
  const attrs: GemmAttrs = { transA, transB, geluA: options.geluA === true };
  return tf.engine().runKernel(GEMM_KERNEL, inputs, attrs as never) as tf.Tensor2D;
}
