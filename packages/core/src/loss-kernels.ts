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
export type ContrastiveLossKernel = {
  (pairs: [tf.Tensor2D, tf.Tensor2D][], temperature: number, eps: number): tf.Scalar;
  /**
   * Optional: SiT's cross-view sum `CL(s₁, t₂) + CL(s₂, t₁)` from both views stacked,
   * `s = [s₁; s₂]`, `t = [t₁; t₂]` `[2B, D]` (checked), without cutting the views apart (a cut
   * is a kernel call, a tape copy and a padded gradient per view). Differentiable in `s`.
   */
  crossViews?: (s: tf.Tensor2D, t: tf.Tensor2D, temperature: number, eps: number) => tf.Scalar;
};

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

/**
 * The masked reconstruction loss `Σ e(pred − target)·m / max(n, 1e-12)`, e = |·| (`l1`) or (·)²
 * (`l2`), over NHWC `pred`, `target` `[B, H, W, C]` and a float32 `mask` `[B, H, W, 1]` (one
 * weight per pixel, counted once per channel in n) or `[B, H, W, C]`; n = the mask's weight over
 * every element. Differentiable in pred and target; the mask is data. Called with arguments
 * already checked; must match @sit/losses' portable result.
 */
export type MaskedLossKernel = (
  pred: tf.Tensor4D,
  target: tf.Tensor4D,
  mask: tf.Tensor4D,
  type: "l1" | "l2",
) => tf.Scalar;

const maskedLossKernels = new Map<string, MaskedLossKernel>();

/**
 * Register a fused masked reconstruction loss for `backend`; @sit/losses'
 * `maskedReconstructionLoss` (reduction "masked") uses it whenever that backend is active. Returns
 * a function that removes the registration.
 */
export function registerMaskedLossKernel(backend: string, kernel: MaskedLossKernel): () => void {
  if (typeof kernel !== "function") throw invalidArgument("kernel", kernel, "a function");
  return registerForBackend("masked reconstruction loss", maskedLossKernels, backend, kernel);
}

/** The fused masked reconstruction loss registered for `backend`, if any. */
export function maskedLossKernel(backend: string): MaskedLossKernel | undefined {
  return maskedLossKernels.get(backend);
}
