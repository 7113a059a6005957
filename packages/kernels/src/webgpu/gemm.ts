import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { type View, encode, viewOf } from "./encode";
import { type WebGpuInternals, newTensorInfo, webgpuInternals } from "./flat-buffers";
import { halfActive } from "../precision";
import { encodeSplitGemm, splitKFor } from "./gemm-split";
import { type GemmVariant, TILE, gemmKey, gemmWgsl, precisionOf } from "./gemm-wgsl";
import { registerWebgpuKernels } from "./program";
import { runKernelSaving, share } from "./tape";

// A tiled GEMM family encoded directly on tfjs's compute pass (see flat-buffers.ts): one shader per
// variant (transposes, GELU prologue, bias / GELU-derivative / residual epilogue, column sums), one
// pipeline per variant and device, shapes as uniforms. Two tfjs kernels use it:
//  - SitLinear: `y = pre(x)·W (+ bias) (+ residual)` over the last axis of x (any rank, no
//    reshapes), pre = identity or exact GELU: one dispatch. With a GELU prologue, an MLP's fc2
//    applies fc1's activation as it loads fc1's pre-activation h, so the forward keeps only h.
//  - SitLinearGrad, its gradient: dx = dy·Wᵀ (· gelu′(x)) and dW = pre(x)ᵀ·dy with db = Σ dy
//    fused into dW's dispatch: two dispatches; the residual's gradient is dy itself.
// SitGemm exposes the raw family (no gradient) for benchmarks.

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

/**
 * Encode `variant` on `[M, N, K]` with the given tensors or buffer views (in {@link gemmBindings}
 * order), directly on tfjs's compute pass (encode.ts: cached WGSL, uniforms and bind groups).
 */
export function encodeGemm(
  b: WebGpuInternals,
  variant: GemmVariant,
  [m, n, k]: [number, number, number],
  operands: (tf.TensorInfo | View)[],
  rowsPer = 1,
): void {
  if (m === 0 || n === 0) return;
  const key = gemmKey(variant);
  const groups: [number, number, number] = [Math.ceil(n / TILE.BN), Math.ceil(m / TILE.BM), 1];
  const limit = b.device.limits.maxComputeWorkgroupsPerDimension;
  if (groups[0] > limit || groups[1] > limit)
    throw new ShapeError(
      `${key}: a [${m}, ${k}]·[${k}, ${n}] product needs ${groups[1]} × ${groups[0]} workgroups; the device allows ${limit} per dimension`,
    );
  const views = operands.map((t) => ("offset" in t ? t : viewOf(b, t)));
  const one = (vs: View[], kSplit: number, slices: number) => {
    const uniforms = [m, n, k, rowsPer, kSplit].map((i) => ({ i }));
    encode(b, key, () => gemmWgsl(variant), vs, uniforms, [groups[0], groups[1], slices]);
  };
  const split = splitKFor(variant, m, n, k);
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
