import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { type Scalars, type View, encode, viewOf } from "./encode";
import { type WebGpuInternals, newTensorInfo, webgpuInternals } from "./flat-buffers";
import { halfActive } from "../precision";
import { encodeSplitGemm, splitKFor } from "./gemm-split";
import {
  type GemmTile,
  type GemmVariant,
  TILES,
  checkGemmVariant,
  gemmKey,
  gemmWgsl,
  precisionOf,
} from "./gemm-wgsl";
import { gemmWgsl128 } from "./gemm-wgsl-128";
import { registerWebgpuKernels } from "./program";
import { runKernelSaving, share } from "./tape";

// A tiled GEMM family encoded directly on tfjs's compute pass (see flat-buffers.ts): one shader per
// variant (transposes, GELU or LayerNorm prologue, bias / GELU-derivative / residual epilogue,
// column sums), one pipeline per variant and device, shapes as uniforms. Two tfjs kernels use it:
//  - SitLinear: `y = pre(x)·W (+ bias) (+ residual)` over the last axis of x (any rank, no
//    reshapes), pre = identity or exact GELU: one dispatch. With a GELU prologue, an MLP's fc2
//    applies fc1's activation as it loads fc1's pre-activation h, so the forward keeps only h.
//  - SitLinearGrad, its gradient: dx = dy·Wᵀ (· gelu′(x)) and dW = pre(x)ᵀ·dy with db = Σ dy
//    fused into dW's dispatch: two dispatches; the residual's gradient is dy itself.
// SitGemm exposes the raw family (no gradient) for benchmarks; gemm-ln.ts the LayerNorm prologue.

export const LINEAR_KERNEL = "SitLinear";
/** SitLinear with a per-sample factor on the product (stochastic depth); saves the factors too. */
export const LINEAR_SCALED_KERNEL = "SitLinearScaled";
export const LINEAR_GRAD_KERNEL = "SitLinearGrad";
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
  [m, n, k]: [number, number, number],
  operands: (tf.TensorInfo | View)[],
  rowsPer = 1,
  eps = 0,
): void {
  checkGemmVariant(variant);
  if (m === 0 || n === 0) return;
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
  if (split.slices > 1) encodeSplitGemm(b, variant, [m, n, k], views, split, one);
  else one(views, split.kSplit, 1);
}

interface LinearAttrs {
  geluInput: boolean;
  hasBias: boolean;
  hasResidual: boolean;
  /** Mixed precision (precision.ts): the f16 variants, all storage f32. */
  half?: boolean;
}

/** Rows of x per entry of the per-sample factors (`x [B, …, K]`, `scale [B]`). */
function rowsPerSample(x: tf.TensorInfo, scale: tf.TensorInfo | undefined): number {
  if (!scale) return 1;
  return tf.util.sizeFromShape(x.shape) / x.shape[x.shape.length - 1] / scale.shape[0];
}

function linearForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: LinearAttrs;
  };
  const b = webgpuInternals(backend);
  const { x, w, bias, residual, scale } = inputs;
  const [k, n] = w.shape;
  const m = tf.util.sizeFromShape(x.shape) / k;
  const y = newTensorInfo(b, [...x.shape.slice(0, -1), n]);
  const variant = {
    ...PLAIN,
    geluA: attrs.geluInput,
    bias: !!bias,
    residual: !!residual,
    scaleRows: !!scale,
  };
  const tensors = [
    x,
    w,
    ...(bias ? [bias] : []),
    ...(residual ? [residual] : []),
    ...(scale ? [scale] : []),
    y,
  ];
  if (m > 0 && n > 0)
    encodeGemm(b, precisionOf(attrs.half, variant), [m, n, k], tensors, rowsPerSample(x, scale));
  return y;
}

function linearBackward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: LinearAttrs;
  };
  const b = webgpuInternals(backend);
  const { dy, x, w, scale } = inputs;
  const [k, n] = w.shape;
  const m = tf.util.sizeFromShape(x.shape) / k;
  const dx = newTensorInfo(b, x.shape);
  const dw = newTensorInfo(b, w.shape);
  const db = attrs.hasBias ? newTensorInfo(b, [n]) : null;
  const sc = scale ? [scale] : [];
  const rowsPer = rowsPerSample(x, scale);
  // dx = (s·dy)·Wᵀ, times gelu′(x) when the forward applied GELU to x.
  const dxVariant = { ...PLAIN, transB: true, geluGrad: attrs.geluInput, scaleRows: !!scale };
  const gx = attrs.geluInput ? [x] : [];
  encodeGemm(b, precisionOf(attrs.half, dxVariant), [m, k, n], [dy, w, ...gx, ...sc, dx], rowsPer);
  // dW = pre(x)ᵀ·(s·dy) over the M rows, with Σ_rows s·dy in the same dispatch.
  const dwVariant = {
    ...PLAIN,
    transA: true,
    geluA: attrs.geluInput,
    colSum: !!db,
    scaleB: !!scale,
  };
  const dwOut = [dw, ...(db ? [db] : [])];
  encodeGemm(b, precisionOf(attrs.half, dwVariant), [k, n, m], [x, dy, ...sc, ...dwOut], rowsPer);
  return db ? [dx, dw, db] : [dx, dw];
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

/** Register the GEMM kernels and SitLinear's gradient with tfjs (once). */
export function registerGemmKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [LINEAR_KERNEL, linearForward],
    [LINEAR_SCALED_KERNEL, linearForward],
    [LINEAR_GRAD_KERNEL, linearBackward],
    [GEMM_KERNEL, gemmForward],
  ]);
  const gradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: unknown) => {
    const [x, w, scale] = saved;
    const inputs = { dy: dy as tf.Tensor, x, w, ...(scale ? { scale } : {}) };
    const [dx, dw, db] = tf
      .engine()
      .runKernel(LINEAR_GRAD_KERNEL, inputs, attrs as never) as tf.Tensor[];
    // The residual's gradient is dy: a new handle on its buffer (what Reshape does, without the
    // kernel call), since a caller may dispose its gradient and dy separately. The factors are
    // constants (drawn on the host).
    return {
      x: () => dx,
      w: () => dw,
      bias: () => db,
      residual: () => share(dy as tf.Tensor),
      scale: () => tf.zerosLike(scale),
    };
  };
  // x, w (and the factors) are saved by webgpuFusedLinear without tape copies (tape.ts).
  tf.registerGradient({ kernelName: LINEAR_KERNEL, gradFunc });
  tf.registerGradient({ kernelName: LINEAR_SCALED_KERNEL, gradFunc });
}

/** Options of {@link webgpuFusedLinear}. */
export interface FusedLinearOptions {
  /** Apply exact GELU to x first (an MLP's fc2 on fc1's pre-activation). */
  geluInput?: boolean;
  /** Added to the output (same shape as the output). */
  residual?: tf.Tensor | null;
  /**
   * Per-sample factors `[B]` (B = x's first axis) multiplying the product before the residual is
   * added: stochastic depth's 0 or 1/keep. Constants: no gradient flows into them.
   */
  rowScale?: tf.Tensor | null;
}

/**
 * `pre(x)·weight (+ bias) (+ residual)` over the last axis of `x [..., in]`, weight `[in, out]`,
 * on webgpu: one dispatch forward, two backward (dx; dW with db). `pre` is identity or exact GELU
 * (`geluInput`). Differentiable in x, weight, bias and residual.
 */
export function webgpuFusedLinear(
  x: tf.Tensor,
  weight: tf.Tensor,
  bias: tf.Tensor | null,
  options: FusedLinearOptions = {},
): tf.Tensor {
  if (!(weight instanceof tf.Tensor) || weight.rank !== 2)
    throw new ShapeError(
      `fusedLinear weight: expected a rank-2 tensor [in, out], got ${describeValue(weight)}`,
    );
  const [inF, outF] = weight.shape;
  if (!(x instanceof tf.Tensor) || x.rank < 1 || x.shape[x.rank - 1] !== inF)
    throw new ShapeError(
      `fusedLinear x: expected a tensor whose last axis is ${inF} (weight is [${inF}, ${outF}]), got ${describeValue(x)}`,
    );
  if (bias != null && (!(bias instanceof tf.Tensor) || bias.rank !== 1 || bias.shape[0] !== outF))
    throw new ShapeError(
      `fusedLinear bias: expected a tensor of shape [${outF}], got ${describeValue(bias)}`,
    );
  const residual = options.residual ?? null;
  const outShape = [...x.shape.slice(0, -1), outF];
  if (
    residual != null &&
    (!(residual instanceof tf.Tensor) || !tf.util.arraysEqual(residual.shape, outShape))
  )
    throw new ShapeError(
      `fusedLinear residual: expected a tensor of shape [${outShape}], got ${describeValue(residual)}`,
    );
  const scale = options.rowScale ?? null;
  if (
    scale != null &&
    (!(scale instanceof tf.Tensor) ||
      scale.rank !== 1 ||
      x.rank < 2 ||
      scale.shape[0] !== x.shape[0])
  )
    throw new ShapeError(
      `fusedLinear rowScale: expected a tensor of shape [${x.rank >= 2 ? x.shape[0] : "B"}] (one factor per sample of x [${x.shape}]), got ${describeValue(scale)}`,
    );
  for (const [name, t] of [
    ["x", x],
    ["weight", weight],
    ["bias", bias],
    ["residual", residual],
    ["rowScale", scale],
  ] as const)
    if (t != null && t.dtype !== "float32")
      throw new ShapeError(`fusedLinear ${name}: expected float32, got ${t.dtype}`);
  registerGemmKernels();
  const attrs: LinearAttrs = {
    geluInput: options.geluInput === true,
    hasBias: bias != null,
    hasResidual: residual != null,
    ...(halfActive() ? { half: true } : {}),
  };
  const inputs: Record<string, tf.Tensor> = { x, w: weight };
  if (bias) inputs.bias = bias;
  if (residual) inputs.residual = residual;
  if (scale) inputs.scale = scale;
  const kernel = scale ? LINEAR_SCALED_KERNEL : LINEAR_KERNEL;
  const saved = scale ? [x, weight, scale] : [x, weight];
  return runKernelSaving(kernel, inputs, attrs, () => saved)[0];
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
