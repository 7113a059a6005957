import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { assertMixedPrecision } from "../precision";
import { newTensorInfo, webgpuInternals } from "./flat-buffers";
import { PLAIN_GEMM, encodeGemm } from "./gemm";
import { precisionOf } from "./gemm-wgsl";
import { registerWebgpuKernels } from "./program";

// The GEMM family's LayerNorm prologue (gemm-wgsl.ts `lnA`, `lnOut`) as a tfjs kernel:
// `LN(x)·w (+ bias) (+ residual)` in one dispatch, optionally with LN(x) itself as a second
// output. The fused block (block.ts) encodes the same variants on its workspace; this entry point
// serves tests and benchmarks (no gradient).

export const GEMM_LN_KERNEL = "SitGemmLayerNorm";

interface GemmLnAttrs {
  eps: number;
  lnOut: boolean;
  /** Mixed precision: f16 operands and result, all storage f32 (the block's qkv GEMM). */
  half: boolean;
}

function gemmLnForward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: GemmLnAttrs;
  };
  const b = webgpuInternals(backend);
  const { x, w, gamma, beta, bias, residual } = inputs;
  const [m, k] = x.shape;
  const n = w.shape[1];
  const c = newTensorInfo(b, [m, n]);
  const y = attrs.lnOut ? newTensorInfo(b, [m, k]) : null;
  const variant = {
    ...PLAIN_GEMM,
    lnA: true,
    lnOut: attrs.lnOut,
    bias: !!bias,
    residual: !!residual,
  };
  const operands = [x, w, gamma, beta, ...(bias ? [bias] : []), ...(residual ? [residual] : [])];
  operands.push(c, ...(y ? [y] : []));
  encodeGemm(b, precisionOf(attrs.half, variant), [m, n, k], operands, 1, attrs.eps);
  return y ? [c, y] : [c];
}

let registered = false;

/** Options of {@link webgpuGemmLayerNorm}. */
export interface GemmLayerNormOptions {
  /** LayerNorm's ε (added to the biased variance). */
  epsilon: number;
  bias?: tf.Tensor1D | null;
  residual?: tf.Tensor2D | null;
  /** Also return LN(x) (the GEMM writes it as it loads it). */
  lnOut?: boolean;
  /** Mixed precision: LN(x) and w rounded to f16 as loaded, f32 sums, the result rounded to f16. */
  half?: boolean;
}

/**
 * `LN(x)·w (+ bias) (+ residual)` for `x [M, K]`, `w [K, N]`, LN over K with `gamma [K]`,
 * `beta [K]`, on webgpu in one dispatch; `[c]`, or `[c, LN(x)]` with `lnOut`. No gradient.
 */
export function webgpuGemmLayerNorm(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  options: GemmLayerNormOptions,
): tf.Tensor2D[] {
  if (!(x instanceof tf.Tensor) || x.rank !== 2)
    throw new ShapeError(`gemmLayerNorm x: expected a rank-2 tensor, got ${describeValue(x)}`);
  const [m, k] = x.shape;
  if (!(w instanceof tf.Tensor) || w.rank !== 2 || w.shape[0] !== k)
    throw new ShapeError(
      `gemmLayerNorm w: expected a rank-2 tensor [${k}, N], got ${describeValue(w)}`,
    );
  const n = w.shape[1];
  const check = (name: string, t: unknown, shape: number[], required = false) => {
    if (t == null && !required) return;
    if (!(t instanceof tf.Tensor && tf.util.arraysEqual(t.shape, shape)))
      throw new ShapeError(
        `gemmLayerNorm ${name}: expected a tensor of shape [${shape}], got ${describeValue(t)}`,
      );
  };
  check("gamma", gamma, [k], true);
  check("beta", beta, [k], true);
  check("bias", options.bias, [n]);
  check("residual", options.residual, [m, n]);
  if (options.half) assertMixedPrecision("gemmLayerNorm half");
  if (!registered) {
    registered = true;
    registerWebgpuKernels([[GEMM_LN_KERNEL, gemmLnForward]]);
  }
  const inputs: Record<string, tf.Tensor> = { x, w, gamma, beta };
  if (options.bias) inputs.bias = options.bias;
  if (options.residual) inputs.residual = options.residual;
  const attrs: GemmLnAttrs = {
    eps: options.epsilon,
    lnOut: options.lnOut === true,
    half: options.half === true,
  };
  return tf.engine().runKernel(GEMM_LN_KERNEL, inputs, attrs as never) as tf.Tensor2D[];
}
