import type * as tf from "@tensorflow/tfjs";
import { webgpuFusedLinear } from "./gemm-linear";

/**
 * The `linear` override for webgpu: the WGSL GEMM with the bias in its epilogue (one dispatch),
 * backward dx = dy·Wᵀ and dW = xᵀ·dy with Σ dy fused in (two dispatches, no transposes).
 */
export function webgpuLinear(
  x: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | null,
): tf.Tensor2D {
  return webgpuFusedLinear(x, weight, bias) as tf.Tensor2D;
}
