import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { gelu } from "./gelu";
import { linear } from "./linear";
import { webgpuFusedLinear } from "./webgpu/gemm-linear";
import { webgpuKernelsEnabled } from "./webgpu/register";

/** Options of {@link fusedLinear}. */
export interface FusedLinearOptions {
  /** Apply exact GELU to `x` first (an MLP's second layer on the first one's pre-activation). */
  geluInput?: boolean;
  /** Added to the output (a residual connection), same shape as the output. */
  residual?: tf.Tensor | null;
  /**
   * Per-sample factors `[B]` (B = x's first axis) on the product before the residual is added:
   * stochastic depth's 0 or 1/keep, as constants (no gradient).
   */
  rowScale?: tf.Tensor | null;
}

/**
 * `residual + rowScale · linear(gelu?(x), weight, bias)` over the last axis of `x`, weight
 * `[in, out]`.
 * On webgpu (with the package's WGSL kernels on) it is one GEMM dispatch forward and two
 * backward, GELU and residual included; elsewhere it is exactly {@link linear}, {@link gelu} and
 * `tf.add`, so models may call it unconditionally.
 */
export function fusedLinear(
  x: tf.Tensor,
  weight: tf.Tensor,
  bias: tf.Tensor | null,
  options: FusedLinearOptions = {},
): tf.Tensor {
  if (tf.getBackend() === "webgpu" && webgpuKernelsEnabled())
    return webgpuFusedLinear(x, weight, bias, options);
  const residual = options.residual ?? null;
  const scale = options.rowScale ?? null;
  return tf.tidy(() => {
    let y = linear(options.geluInput ? gelu(x) : x, weight, bias);
    if (scale != null) {
      if (!(scale instanceof tf.Tensor) || scale.rank !== 1 || scale.shape[0] !== y.shape[0])
        throw new ShapeError(
          `fusedLinear rowScale: expected a tensor of shape [${y.shape[0]}] (one factor per sample of x [${x.shape}]), got ${describeValue(scale)}`,
        );
      y = tf.mul(y, tf.reshape(scale, [y.shape[0], ...y.shape.slice(1).map(() => 1)]));
    }
    if (residual == null) return y;
    if (!(residual instanceof tf.Tensor) || !tf.util.arraysEqual(residual.shape, y.shape))
      throw new ShapeError(
        `fusedLinear residual: expected a tensor of shape [${y.shape}], got ${describeValue(residual)}`,
      );
    return tf.add(residual, y);
  });
}
