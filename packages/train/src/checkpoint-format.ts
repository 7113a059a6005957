import { IOError, invalidArgument, parseCheckpoint, serializeCheckpoint } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import type { CheckpointIO } from "./checkpoint-io";
import type { RecipeState } from "./recipe";

// What a @sit/train checkpoint holds, as bytes both ways: the file `fit` (and `sit pretrain`)
// writes into a run's checkpoint folder is exactly serializeTrainCheckpoint's bytes, so a web page
// can download one that `sit pretrain --resume` continues, and open one the CLI wrote. The folder
// itself (file names, the `latest` pointer, keeping the last few) is @sit/train/node's.

/** Name of the pointer file, in a checkpoint directory, that holds the newest checkpoint's file name. */
export const LATEST_POINTER = "latest";
const FORMAT = "sit-train-checkpoint";
const FORMAT_VERSION = 1;

/** Where a run stood when a checkpoint was written; stored in the checkpoint's meta under `train`. */
export interface TrainProgress {
  /** Steps completed = the global index of the next step. */
  step: number;
  /** Epoch of the next step. */
  epoch: number;
  /** Batches of `epoch` already consumed (skipped on resume). */
  stepInEpoch: number;
  /** Batches per epoch, when known. */
  stepsPerEpoch: number | null;
  /** Images seen so far. */
  images: number;
  /** Seconds of training so far (all runs). */
  elapsedSec: number;
}

/** A checkpoint read back: where the run stood and the recipe state (tensors owned by the caller). */
export interface LoadedCheckpoint {
  /** The file it was read from (or the name given to {@link parseTrainCheckpoint}). */
  path: string;
  progress: TrainProgress;
  /** The recipe's name when it was saved. */
  recipe: string;
  /** Library versions when it was saved. */
  versions: Record<string, string>;
  /** What to pass to `recipe.loadState`. */
  state: RecipeState;
  /** Dispose the state's tensors. */
  dispose(): void;
}

/** What a checkpoint records besides the recipe state: {@link serializeTrainCheckpoint}'s input. */
export interface TrainCheckpointInfo {
  /** The recipe's name (`recipe.name`). */
  recipe: string;
  /** Where the run stands (a run that starts from it continues at `progress.step`). */
  progress: TrainProgress;
  /** Library versions to record (what `fit` records: @sit/train, tfjs, the backend). */
  versions?: Record<string, string>;
}

/** Options of `writeCheckpoint` (@sit/train/node). */
export interface WriteCheckpointOptions {
  /** Keep this many newest checkpoints (at most this step) and delete older ones; 0 keeps all. */
  keepLast?: number;
  io?: CheckpointIO;
  /** Library versions to record. */
  versions?: Record<string, string>;
  onWarning?: (message: string) => void;
}

/** Options of `resumeFrom` (@sit/train/node). */
export interface ResumeFromOptions {
  io?: CheckpointIO;
  /** Told about every checkpoint skipped as unreadable; `console.warn` by default. */
  onWarning?: (message: string) => void;
}

const NAME_RE = /^checkpoint-(\d{8,})\.safetensors$/;

/** File name of the checkpoint taken after `step` completed steps. */
export function checkpointFileName(step: number): string {
  return `checkpoint-${String(step).padStart(8, "0")}.safetensors`;
}

/** The step of a checkpoint file name (`checkpoint-<step>.safetensors`); undefined for other names. */
export function checkpointStep(name: string): number | undefined {
  const m = NAME_RE.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The text of a folder's `latest` pointer naming checkpoint file `name`. */
export function latestPointer(name: string): string {
  return `${name}\n`;
}

/**
 * Which checkpoint files of a folder to read, in order: the one its `latest` pointer names (`pointer`,
 * the pointer file's text) when it names one of `names`, then the others newest first. Other names
 * are ignored. `badPointer` is the name a pointer gave that is not a checkpoint of the folder.
 */
export function checkpointCandidates(
  names: readonly string[],
  pointer?: string,
): { order: string[]; badPointer?: string } {
  const order: string[] = [];
  let badPointer: string | undefined;
  if (pointer !== undefined) {
    const named = pointer.trim();
    if (checkpointStep(named) !== undefined && names.includes(named)) order.push(named);
    else badPointer = named;
  }
  const steps = names
    .map((name) => ({ name, step: checkpointStep(name) }))
    .filter((c): c is { name: string; step: number } => c.step !== undefined)
    .sort((a, b) => b.step - a.step);
  for (const c of steps) if (!order.includes(c.name)) order.push(c.name);
  return badPointer === undefined ? { order } : { order, badPointer };
}

/**
 * The checkpoint a folder resumes from, read from the folder's files as bytes (names → contents,
 * e.g. the `checkpoints/` folder of a `sit pretrain` run dropped on a page): the one `latest`
 * names, else the newest readable one, skipping each unreadable one with a warning — what
 * `resumeFrom` of @sit/train/node picks on disk. Undefined when the folder holds no checkpoint; an
 * IOError when none is readable. `source` names the folder in messages.
 */
export function parseCheckpointFolder(
  files: Readonly<Record<string, Uint8Array>>,
  options: { source?: string; onWarning?: (message: string) => void } = {},
): LoadedCheckpoint | undefined {
  const source = options.source ?? "<folder>";
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const pointerBytes = files[LATEST_POINTER];
  const pointer = pointerBytes ? new TextDecoder().decode(pointerBytes) : undefined;
  const { order, badPointer } = checkpointCandidates(Object.keys(files), pointer);
  if (badPointer !== undefined)
    warn(
      `${source}/${LATEST_POINTER} names ${JSON.stringify(badPointer)}, which is not a checkpoint here; ignoring it`,
    );
  const failures: string[] = [];
  for (const name of order) {
    try {
      return parseTrainCheckpoint(files[name], `${source}/${name}`);
    } catch (err) {
      failures.push(name);
      warn(`skipping unreadable checkpoint ${source}/${name}: ${(err as Error).message}`);
    }
  }
  if (failures.length === 0) return undefined;
  throw new IOError(
    `${source}: no readable checkpoint (all ${failures.length} failed: ${failures.join(", ")})`,
  );
}

/**
 * The checkpoint (tensors and meta) of a recipe state at a point of a run: what a `CheckpointIO`
 * saves. Its meta holds the format, the recipe's name, the progress, the versions and the recipe's
 * own meta.
 */
export function trainCheckpoint(info: TrainCheckpointInfo, state: RecipeState): RecipeState {
  return {
    tensors: state.tensors,
    meta: {
      format: FORMAT,
      formatVersion: FORMAT_VERSION,
      recipe: info.recipe,
      train: info.progress,
      versions: info.versions ?? {},
      recipeMeta: state.meta,
    },
  };
}

function isProgress(t: Partial<TrainProgress> | undefined): t is TrainProgress {
  const isCount = (v: unknown): v is number =>
    typeof v === "number" && Number.isInteger(v) && v >= 0;
  return (
    !!t &&
    isCount(t.step) &&
    isCount(t.epoch) &&
    isCount(t.stepInEpoch) &&
    (t.stepsPerEpoch === null || isCount(t.stepsPerEpoch)) &&
    typeof t.images === "number" &&
    typeof t.elapsedSec === "number"
  );
}

function parseProgress(meta: Record<string, unknown>, path: string): TrainProgress {
  const t = meta.train as Partial<TrainProgress> | undefined;
  if (meta.format !== FORMAT || !isProgress(t))
    throw new IOError(
      `${path}: not a @sit/train checkpoint (expected meta.format "${FORMAT}" with train progress, got format ${JSON.stringify(meta.format)})`,
    );
  return t;
}

/**
 * A checkpoint's tensors and meta as a {@link LoadedCheckpoint}; throws an IOError naming `path`
 * (and disposes the tensors) when the meta is not a @sit/train checkpoint's.
 */
export function readTrainCheckpoint(
  raw: { tensors: Record<string, tf.Tensor>; meta: Record<string, unknown> },
  path: string,
): LoadedCheckpoint {
  let progress: TrainProgress;
  try {
    progress = parseProgress(raw.meta ?? {}, path);
  } catch (err) {
    tf.dispose(raw.tensors);
    throw err;
  }
  return {
    path,
    progress,
    recipe: String(raw.meta.recipe ?? ""),
    versions: (raw.meta.versions ?? {}) as Record<string, string>,
    state: { tensors: raw.tensors, meta: (raw.meta.recipeMeta ?? {}) as Record<string, unknown> },
    dispose: () => tf.dispose(raw.tensors),
  };
}

/**
 * A recipe state at a point of a run as checkpoint bytes: the very bytes of the file `fit` writes
 * (`checkpointFileName(progress.step)` in a run's checkpoint folder), so `sit pretrain --resume`
 * continues from them. Does not dispose the state's tensors.
 */
export function serializeTrainCheckpoint(
  info: TrainCheckpointInfo,
  state: RecipeState,
): Uint8Array {
  if (!info || typeof info.recipe !== "string" || !info.progress)
    throw invalidArgument("info", info, "{ recipe: string, progress: TrainProgress, versions? }");
  if (!state || typeof state.tensors !== "object" || typeof state.meta !== "object")
    throw invalidArgument("state", state, "a RecipeState { tensors, meta }");
  if (!isProgress(info.progress))
    throw invalidArgument(
      "info.progress",
      info.progress,
      "{ step, epoch, stepInEpoch: integers ≥ 0, stepsPerEpoch: an integer ≥ 0 or null, images, elapsedSec: numbers }",
    );
  return serializeCheckpoint(trainCheckpoint(info, state));
}

/**
 * Read checkpoint bytes (a file `fit` or `sit pretrain` wrote, or {@link serializeTrainCheckpoint}'s
 * bytes), checking the SHA-256; throws an IOError naming `source` when they are truncated, corrupt
 * or not a @sit/train checkpoint. Pass `state` to `recipe.loadState`, then call `dispose()`.
 */
export function parseTrainCheckpoint(bytes: Uint8Array, source = "<buffer>"): LoadedCheckpoint {
  const raw = parseCheckpoint<Record<string, unknown>>(bytes, source);
  return readTrainCheckpoint(raw, source);
}
