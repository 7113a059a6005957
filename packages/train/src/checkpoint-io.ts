import type * as tf from "@tensorflow/tfjs";
import type { MaybePromise, RecipeState } from "./recipe";

/**
 * How checkpoint files are written and read. The default, `defaultCheckpointIO` of
 * `@sit/train/node`, is @sit/core's `saveCheckpoint` / `loadCheckpoint` (safetensors with a
 * SHA-256, written atomically). A replacement's `save` must be atomic and durable when it
 * resolves, and its `load` must throw (an `IOError` naming the file) on a truncated or corrupt
 * file and return tensors the caller owns.
 */
export interface CheckpointIO {
  save(path: string, state: RecipeState): MaybePromise<void>;
  load(
    path: string,
  ): MaybePromise<{ tensors: Record<string, tf.Tensor>; meta: Record<string, unknown> }>;
}
