import type * as tf from "@tensorflow/tfjs";
import { invalidArgument } from "./errors";
import { registerForBackend } from "./optim/fused-kernels";

// The seam through which a backend package (e.g. @sit/kernels on webgpu) applies a drawn GMML
// corruption where the images live, so that @sit/gmml does not depend on it. With no
// registration for the active backend, @sit/gmml's `applyPixelSources` uses one portable gather.

/**
 * Build a corrupted batch from `images` `[B, H, W, C]` and a per-pixel source map (@sit/gmml's
 * `CorruptionPlan`): output pixel p takes all channels from clean pixel `source[p]` when it is ≥ 0,
 * zeros when it is −1, and the noise values `noise[k·C … k·C + C)` when it is `−2 − k`. Called
 * with arguments already checked; returns a new tensor and must give exactly the portable result.
 */
export type PixelSourcesKernel = (
  images: tf.Tensor4D,
  source: Int32Array,
  noise: Float32Array,
) => tf.Tensor4D;

const pixelSourcesKernels = new Map<string, PixelSourcesKernel>();

/**
 * Register a device implementation of GMML's pixel-source application for `backend`; @sit/gmml's
 * `applyPixelSources` (and so `corruptViews`) uses it whenever that backend is active. Returns a
 * function that removes the registration.
 */
export function registerPixelSourcesKernel(
  backend: string,
  kernel: PixelSourcesKernel,
): () => void {
  if (typeof kernel !== "function") throw invalidArgument("kernel", kernel, "a function");
  return registerForBackend("GMML pixel-sources kernel", pixelSourcesKernels, backend, kernel);
}

/** The pixel-sources kernel registered for `backend`, if any. */
export function pixelSourcesKernel(backend: string): PixelSourcesKernel | undefined {
  return pixelSourcesKernels.get(backend);
}
