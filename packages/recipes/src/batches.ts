import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError } from "@sit/core";

// The batch shapes the built-in recipes train on.

/** A batch of two augmented views (NHWC, normalised), as `@sit/data`'s two-view loader yields. */
export interface TwoViewBatch {
  views: tf.Tensor4D[];
}

/** A batch of one view per image. */
export interface ImageBatch {
  images: tf.Tensor4D;
}

/** Check that a batch holds two views of the same shape and return them. */
export function twoViews(batch: TwoViewBatch, name = "batch"): [tf.Tensor4D, tf.Tensor4D] {
  const views = (batch as TwoViewBatch | undefined)?.views;
  if (!Array.isArray(views) || views.length !== 2)
    throw new ConfigError(
      `${name}.views: expected an array of two NHWC tensors (the two augmented views), got ${Array.isArray(views) ? `${views.length} views` : String(views)}`,
    );
  const [a, b] = views;
  if (a.rank !== 4 || !tf.util.arraysEqual(a.shape, b.shape))
    throw new ShapeError(
      `${name}.views: expected two [B, H, W, C] tensors of one shape, got [${a.shape}] and [${b.shape}]`,
    );
  return [a, b];
}
