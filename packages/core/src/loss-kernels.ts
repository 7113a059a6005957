import type * as tf from "@tensorflow/tfjs";
import { invalidArgument } from "./errors";
import { registerForBackend } from "./optim/fused-kernels";

// The seam through which a backend package (e.g. @sit/kernels on webgpu) supplies fused losses to
// @sit/losses, so that @sit/losses does not depend on it. With no registration for the active
// backend, @sit/losses uses its portable custom-gradient implementations.

/**
 * Σ over `pairs` (one or two) of the MoCo-v3 loss of queries `q [B, D]` against keys `k [B, D]`:
 * `2τ · mean_i CE(normalize(q)·normalize(k)ᵀ/τ, i)`, L2 normalisation with ε as PyTorch's
 * `F.normalize`. Differentiable in the queries; no gradient reaches the keys. Called with
 * arguments already checked (float32, equal shapes); must match @sit/losses' portable result.
 */
export type ContrastiveLossKernel = (
  pairs: [tf.Tensor2D, tf.Tensor2D][],
  temperature: number,
  eps: number,
) => tf.Scalar;

const contrastiveKernels = new Map<string, ContrastiveLossKernel>();

/**
 * Register a fused MoCo-v3 loss for `backend`; @sit/losses' `mocoV3Loss` and
 * `sitContrastiveLoss` use it whenever that backend is active. Returns a function that removes the
 * registration.
 */
export function registerContrastiveLossKernel(
  backend: string,
  kernel: ContrastiveLossKernel,
): () => void {
  if (typeof kernel !== "function") throw invalidArgument("kernel", kernel, "a function");
  return registerForBackend("MoCo-v3 loss", contrastiveKernels, backend, kernel);
}

/** The fused MoCo-v3 loss registered for `backend`, if any. */
export function contrastiveLossKernel(backend: string): ContrastiveLossKernel | undefined {
  return contrastiveKernels.get(backend);
}
