import type {
  LoadedCheckpoint,
  ResumeFromOptions,
  TrainProgress,
  WriteCheckpointOptions,
} from "./checkpoint-format";
import type { RecipeState } from "./recipe";

/**
 * A run's checkpoint folder: what @sit/train/node gives `fitOn` (files on disk).
 * @internal
 */
export interface CheckpointFolder {
  /** Delete temporary files of interrupted writes; what was removed. */
  removeStale(dir: string): { removed: string[]; bytes: number };
  write(
    dir: string,
    recipeName: string,
    progress: TrainProgress,
    state: RecipeState,
    options: WriteCheckpointOptions,
  ): Promise<string>;
  resume(target: string, options: ResumeFromOptions): Promise<LoadedCheckpoint | undefined>;
  setAsideDiverged(dir: string, step: number): { lastGood?: string; setAside?: string };
}

/**
 * What a runtime brings to `fit`: a checkpoint folder and interrupt signals (Node's, from
 * @sit/train/node). A web page has neither: it saves `recipe.saveState()` itself
 * (serializeTrainCheckpoint) and stops a run with `options.signal`.
 * @internal
 */
export interface FitHost {
  folder?: CheckpointFolder;
  installStopHandlers?: (
    signals: readonly NodeJS.Signals[],
    onStop: (signal: NodeJS.Signals) => void,
  ) => () => void;
}
