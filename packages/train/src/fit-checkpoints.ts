import { ConfigError, isHostBackend } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import type { LoadedCheckpoint, TrainProgress } from "./checkpoint-format";
import type { FitHost } from "./fit-host";
import { type DivergedCheckpoints, NonFiniteStateError, firstNonFinite } from "./guards";
import type { FitOptions } from "./options";
import type { Recipe } from "./recipe";
import { libraryVersions } from "./versions";

/**
 * The checkpoints of one {@link fit} run in its folder: where it resumed from, what it wrote, and
 * what to set aside when a loss turns out non-finite. Without a folder (a web page) it does nothing.
 */
export class FitCheckpoints<Batch> {
  /** Steps done when the newest checkpoint of this run was written or resumed from (−1: none). */
  private lastSavedStep = -1;
  /** The last checkpoint this run wrote. */
  lastWritten: string | undefined;
  /** The checkpoint this run resumed from. */
  resumedFrom: string | undefined;

  constructor(
    private readonly host: FitHost,
    private readonly recipe: Recipe<Batch>,
    private readonly options: FitOptions<Batch>,
    private readonly warn: (message: string) => void,
  ) {}

  /**
   * Remove temp files of killed writers; with `options.resume`, load the checkpoint into the
   * recipe and return its progress (undefined when there was none to resume).
   */
  async restore(): Promise<TrainProgress | undefined> {
    const o = this.options;
    const folder = this.host.folder;
    if (!folder) return undefined;
    if (o.checkpoint) {
      // Writers killed mid-checkpoint leave full-size temp files behind; theirs are gone for good.
      const stale = folder.removeStale(o.checkpoint.dir);
      if (stale.removed.length > 0)
        this.warn(
          `removed ${stale.removed.length} temporary file(s) (${(stale.bytes / 1e6).toFixed(1)} MB) left in ${o.checkpoint.dir} by interrupted checkpoint writes`,
        );
    }
    if (!o.resume) return undefined;
    const target = o.resume === true ? o.checkpoint!.dir : o.resume;
    const loaded: LoadedCheckpoint | undefined = await folder.resume(target, {
      io: o.checkpoint?.io,
      onWarning: (m) => this.warn(m),
    });
    if (!loaded) {
      if (o.resume !== true)
        throw new ConfigError(`options.resume: no checkpoint at ${JSON.stringify(target)}`);
      return undefined;
    }
    try {
      await this.recipe.loadState(loaded.state);
    } finally {
      loaded.dispose();
    }
    this.lastSavedStep = loaded.progress.step;
    this.resumedFrom = loaded.path;
    return { ...loaded.progress };
  }

  /**
   * Write a checkpoint of the recipe's state after `progress.step` steps, unless one was written
   * at that step or no folder is configured; refuses (NonFiniteStateError) a state holding a NaN
   * or infinity. The path written, or undefined.
   */
  async write(progress: TrainProgress): Promise<string | undefined> {
    const ck = this.options.checkpoint;
    const folder = this.host.folder;
    if (!ck || !folder || progress.step === this.lastSavedStep) return undefined;
    const state = await this.recipe.saveState();
    let path: string;
    try {
      // webgpu under Node has no synchronous read: reading every tensor asynchronously first
      // leaves its values cached on the host, where the writer's synchronous read finds them.
      if (!isHostBackend()) await Promise.all(Object.values(state.tensors).map((t) => t.data()));
      if (this.options.nonFiniteLoss !== "off") {
        const bad = await firstNonFinite(state.tensors);
        if (bad)
          throw new NonFiniteStateError(progress.step, bad, this.lastWritten ?? this.resumedFrom);
      }
      // At least two are kept: when the newest turns out to hold diverged weights (see
      // diverged), the one before it is what training can resume from.
      const keepLast = ck.keepLast ?? 3;
      path = await folder.write(ck.dir, this.recipe.name, progress, state, {
        keepLast: keepLast === 0 ? 0 : Math.max(keepLast, 2),
        io: ck.io,
        versions: libraryVersions(),
        onWarning: (m) => this.warn(m),
      });
    } finally {
      // Variables are the recipe's live state; any other tensor was made for this checkpoint.
      for (const t of Object.values(state.tensors)) if (!(t instanceof tf.Variable)) t.dispose();
    }
    this.lastSavedStep = progress.step;
    this.lastWritten = path;
    return path;
  }

  /**
   * On a non-finite loss at `step`: the checkpoint written after `step` steps (if this run wrote
   * or resumed from it) holds the weights that produced it, so it is set aside and `latest` goes
   * back to the one before.
   */
  diverged(step: number): DivergedCheckpoints | undefined {
    const ck = this.options.checkpoint;
    const folder = this.host.folder;
    if (!ck || !folder) return undefined;
    if (this.lastSavedStep === step)
      return { dir: ck.dir, ...folder.setAsideDiverged(ck.dir, step) };
    return { dir: ck.dir, lastGood: this.lastWritten ?? this.resumedFrom };
  }
}
