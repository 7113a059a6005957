import type * as tf from "@tensorflow/tfjs";
import type { MaybePromise, RecipeState } from "./recipe";

/**
 * How checkpoint files are written and read. The default is @sit/core's `saveCheckpoint` /
 * `loadCheckpoint` (atomic, checksummed); tests or other storage can supply their own.
 * `save` must be atomic and durable when it resolves; `load` must throw (an `IOError`) on a
 * truncated or corrupt file and return tensors the caller owns.
 */
export interface CheckpointIO {
  save(path: string, state: RecipeState): MaybePromise<void>;
  load(
    path: string,
  ): MaybePromise<{ tensors: Record<string, tf.Tensor>; meta: Record<string, unknown> }>;
}
