import { removeStaleTempFiles } from "@sit/core/node";
import {
  type BatchSource,
  type FitHost,
  type FitOptions,
  type FitResult,
  type Recipe,
  fitOn,
} from "@sit/train";
import { resumeFrom, setAsideDiverged, writeCheckpoint } from "./checkpoint";
import { installStopHandlers } from "./signals";

// Node's runtime for the one training loop of @sit/train (fit.ts): a checkpoint folder on disk
// and SIGINT / SIGTERM.
const NODE_HOST: FitHost = {
  folder: {
    removeStale: removeStaleTempFiles,
    write: writeCheckpoint,
    resume: resumeFrom,
    setAsideDiverged,
  },
  installStopHandlers,
};

/**
 * Train `recipe` on the batches of `loader` under Node: runs `recipe.trainStep(batch, step)` for
 * every batch, emits a metric event after every step to the sinks, writes full-state checkpoints
 * into `options.checkpoint.dir`, runs the online monitor, and guards against non-finite losses,
 * tensor leaks and interrupts.
 *
 * Resuming (`resume`) restores the recipe from a checkpoint and continues at the same step, epoch
 * and position in the epoch (the batches of the epoch already consumed are drawn and skipped), so
 * with a deterministic loader and recipe the run continues exactly as an uninterrupted one.
 *
 * SIGINT / SIGTERM (and `options.signal`) stop after the current step and write a checkpoint;
 * `fit` then resolves with reason "signal" / "aborted" and removes its handlers. A time budget
 * (`options.maxSeconds`) stops the same way, with reason "time-budget". The same loop as `fit`
 * of `@sit/train` (a web page's), with the checkpoint folder and the signals.
 */
export async function fit<Batch>(
  recipe: Recipe<Batch>,
  loader: BatchSource<Batch>,
  options: FitOptions<Batch>,
): Promise<FitResult> {
  return fitOn(NODE_HOST, recipe, loader, options);
}
