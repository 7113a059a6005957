import * as tf from "@tensorflow/tfjs";
import type { Rng } from "@sit/core";
import type { CorruptionPlan } from "./corruption-plan";
import type { ImageBatch, ImageInput, MaskingBuffers, PixelMask } from "./images";
import type { TokenMask } from "./token-mask";

/** What every masking strategy returns. All arrays are fresh; the input is never modified. */
export interface MaskingResult {
  /** The corrupted images, NHWC like the input. */
  corrupted: ImageBatch;
  /** `[B, H, W]`, 1 = corrupted pixel (all channels). */
  pixelMask: PixelMask;
  /** `[B, N]` per-token mask, when the strategy knows a patch size. */
  tokenMask?: TokenMask;
}

/**
 * A masking/corruption strategy: GMML blocks ({@link GmmlMasker}), random tokens
 * ({@link RandomTokenMasker}, MAE) or token blocks ({@link BlockwiseMasker}, BEiT). Every random draw
 * comes from the `rng` passed in, so the same seed gives the same masks on every backend.
 */
export interface MaskingStrategy {
  /** Mask/corrupt a batch; `out` may hand in a previous result's arrays to be overwritten. */
  apply(images: ImageInput, rng: Rng, out?: MaskingBuffers): MaskingResult;
  /**
   * Optional: the same draws as `apply` without reading the images, as a {@link CorruptionPlan}
   * to apply where the images live (e.g. on the GPU). Strategies that have it must give exactly
   * `apply`'s result once the plan is applied.
   */
  plan?(shape: readonly [number, number, number, number], rng: Rng): CorruptionPlan;
}

/** Tensors of a {@link MaskingResult} (float32; the caller disposes them). */
export interface MaskingTensors {
  corrupted: tf.Tensor4D;
  /** `[B, H, W, 1]` float32 0/1, ready to broadcast over channels in a loss. */
  pixelMask: tf.Tensor4D;
  /** `[B, N]` float32 0/1 (the thresholded token mask). */
  tokenMask?: tf.Tensor2D;
}

/**
 * Upload a masking result to the current tfjs backend. tfjs's cpu backend keeps the typed array it
 * is given, so there the corrupted tensor shares memory with `result.corrupted.data`: dispose the
 * tensors before handing `result` back to a strategy as `out`.
 */
export function maskingResultToTensors(result: MaskingResult): MaskingTensors {
  const [B, H, W] = result.pixelMask.shape;
  const out: MaskingTensors = {
    corrupted: tf.tensor4d(result.corrupted.data, result.corrupted.shape, "float32"),
    pixelMask: tf.tensor4d(Float32Array.from(result.pixelMask.data), [B, H, W, 1], "float32"),
  };
  if (result.tokenMask)
    out.tokenMask = tf.tensor2d(
      Float32Array.from(result.tokenMask.mask),
      result.tokenMask.shape,
      "float32",
    );
  return out;
}
