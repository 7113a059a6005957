import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { carve, totalOf } from "./encode";
import { callTable, encodePlanned } from "./encode-plan";
import { newTensorInfo, scratchBuffer, webgpuInternals } from "./flat-buffers";
import { halfActive } from "../precision";
import {
  PLAIN_GEMM as PLAIN,
  encodeGemm,
  encodeGemmDeferred,
  gemmSettingsKey,
  gemmSliceFloats,
} from "./gemm";
import { precisionOf } from "./gemm-wgsl";
import { registerWebgpuKernels } from "./program";
import { encodeStridedSums } from "./strided-sums";
import { runKernelSaving, share } from "./tape";

// A linear layer on the GEMM family (gemm.ts) as tfjs kernels:
//  - SitLinear: `y = pre(x)·W (+ bias) (+ residual)` over the last axis of x (any rank, no
//    reshapes), pre = identity or exact GELU: one dispatch. With a GELU prologue, an MLP's fc2
//    applies fc1's activation as it loads fc1's pre-activation h, so the forward keeps only h.
//  - SitLinearGrad, its gradient: dx = dy·Wᵀ (· gelu′(x)) and dW = pre(x)ᵀ·dy with db = Σ dy
//    fused into dW's dispatch: two dispatches (three when either splits along K, the sums of
//    both products' slices being one); the residual's gradient is dy itself.

export const LINEAR_KERNEL = "SitLinear";
/** SitLinear with a per-sample factor on the product (stochastic depth); saves the factors too. */
export const LINEAR_SCALED_KERNEL = "SitLinearScaled";
export const LINEAR_GRAD_KERNEL = "SitLinearGrad";

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

/**
 * What decides a linear kernel's dispatches (with the inputs' names, which give the call's table:
 * encode-plan.ts): its attributes, the shapes and the GEMM settings.
 */
function signatureOf(kind: string, attrs: LinearAttrs, inputs: Record<string, tf.TensorInfo>) {
  let shapes = "";
  for (const t of Object.values(inputs)) shapes += `[${t.shape}]`;
  const flags = `${+attrs.geluInput}${+attrs.hasBias}${+attrs.hasResidual}${+!!attrs.half}`;
  return `${kind}|${flags}|${shapes}|${gemmSettingsKey()}`;
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
  if (m === 0 || n === 0) return y;
  const { table, names } = callTable(b, inputs, [y]);
  encodePlanned(b, `${signatureOf("LF", attrs, inputs)}|${names}`, table, () =>
    encodeGemm(b, precisionOf(attrs.half, variant), [m, n, k], tensors, rowsPerSample(x, scale)),
  );
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
  // dW = pre(x)ᵀ·(s·dy) over the M rows, with Σ_rows s·dy in the same dispatch.
  const dwVariant = {
    ...PLAIN,
    transA: true,
    geluA: attrs.geluInput,
    colSum: !!db,
    scaleB: !!scale,
  };
  const dxProduct = precisionOf(attrs.half, dxVariant);
  const dwProduct = precisionOf(attrs.half, dwVariant);
  const dwOut = [dw, ...(db ? [db] : [])];
  const { table, names } = callTable(b, inputs, [dx, ...dwOut]);
  encodePlanned(b, `${signatureOf("LB", attrs, inputs)}|${names}`, table, () => {
    // Where both products split along K (a wide layer on few rows), their slices share one
    // buffer and one dispatch sums both. (Worked out when recording only, as the products.)
    const sizes = {
      dx: gemmSliceFloats(dxProduct, [m, k, n]),
      dw: gemmSliceFloats(dwProduct, [k, n, m]),
    };
    const total = totalOf(sizes);
    const at = total > 0 ? carve(b, scratchBuffer(b, "linear-slices", total), sizes) : null;
    encodeStridedSums(b, [
      ...encodeGemmDeferred(b, dxProduct, [m, k, n], [dy, w, ...gx, ...sc, dx], {
        rowsPer,
        area: at?.dx,
      }),
      ...encodeGemmDeferred(b, dwProduct, [k, n, m], [x, dy, ...sc, ...dwOut], {
        rowsPer,
        area: at?.dw,
      }),
    ]);
  });
  return db ? [dx, dw, db] : [dx, dw];
}

let registered = false;

/** Register SitLinear (and its scaled form) with its gradient with tfjs (once). */
export function registerLinearKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [LINEAR_KERNEL, linearForward],
    [LINEAR_SCALED_KERNEL, linearForward],
    [LINEAR_GRAD_KERNEL, linearBackward],
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
  registerLinearKernels();
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
