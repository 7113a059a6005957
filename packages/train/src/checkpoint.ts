import { existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { IOError } from "@sit/core";
import { writeFileAtomic } from "@sit/core/node";
import * as tf from "@tensorflow/tfjs";
import { type CheckpointIO, defaultCheckpointIO } from "./checkpoint-io";

import type { RecipeState } from "./recipe";

/** Name of the pointer file, in a checkpoint directory, that holds the newest checkpoint's file name. */
export const LATEST_POINTER = "latest";
const FORMAT = "sit-train-checkpoint";
const FORMAT_VERSION = 1;
const NAME_RE = /^checkpoint-(\d{8,})\.safetensors$/;

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

/** File name of the checkpoint taken after `step` completed steps. */
export function checkpointFileName(step: number): string {
  return `checkpoint-${String(step).padStart(8, "0")}.safetensors`;
}

/** Checkpoint files in `dir`, oldest (fewest steps) first. Temporary and foreign files are ignored. */
export function listCheckpoints(dir: string): Array<{ path: string; step: number }> {
  if (!existsSync(dir)) return [];
  const out: Array<{ path: string; step: number }> = [];
  for (const name of readdirSync(dir)) {
    const m = NAME_RE.exec(name);
    if (m) out.push({ path: join(dir, name), step: Number(m[1]) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** Options of {@link writeCheckpoint}. */
export interface WriteCheckpointOptions {
  /** Keep this many newest checkpoints (at most this step) and delete older ones; 0 keeps all. */
  keepLast?: number;
  io?: CheckpointIO;
  /** Library versions to record. */
  versions?: Record<string, string>;
  onWarning?: (message: string) => void;
}

/**
 * Write one checkpoint into `dir`: the file itself (atomically and durably, through `io`), then
 * the `latest` pointer (atomically), and only then delete checkpoints beyond `keepLast`, so that
 * a crash at any moment leaves at least one complete checkpoint that `latest` names or that
 * {@link resumeFrom} finds. Returns the path written.
 */
export async function writeCheckpoint(
  dir: string,
  recipeName: string,
  progress: TrainProgress,
  state: RecipeState,
  options: WriteCheckpointOptions = {},
): Promise<string> {
  const io = options.io ?? defaultCheckpointIO;
  const name = checkpointFileName(progress.step);
  const path = join(dir, name);
  const meta = {
    format: FORMAT,
    formatVersion: FORMAT_VERSION,
    recipe: recipeName,
    train: progress,
    versions: options.versions ?? {},
    recipeMeta: state.meta,
  };
  await io.save(path, { tensors: state.tensors, meta });
  writeFileAtomic(join(dir, LATEST_POINTER), `${name}\n`);
  const keep = options.keepLast ?? 0;
  if (keep > 0) {
    const older = listCheckpoints(dir).filter((c) => c.step <= progress.step);
    for (const c of older.slice(0, Math.max(0, older.length - keep))) {
      try {
        rmSync(c.path, { force: true });
      } catch (err) {
        options.onWarning?.(`could not delete old checkpoint ${c.path}: ${(err as Error).message}`);
      }
    }
  }
  return path;
}

/**
 * Set aside the checkpoint taken after `step` steps because the loss computed from its weights
 * was not finite (the update that diverged is saved before any NaN shows): point `latest` at the
 * newest checkpoint before it, then rename it to `checkpoint-<step>.diverged.safetensors`, which
 * {@link resumeFrom} never picks; with no earlier checkpoint, `latest` is removed. A crash
 * between the two leaves `latest` on the good one. Returns the good checkpoint and the new name.
 */
export function setAsideDiverged(
  dir: string,
  step: number,
): { lastGood: string | undefined; setAside: string | undefined } {
  const good = listCheckpoints(dir)
    .filter((c) => c.step < step)
    .pop();
  const bad = join(dir, checkpointFileName(step));
  if (!existsSync(bad)) return { lastGood: good?.path, setAside: undefined };
  const pointer = join(dir, LATEST_POINTER);
  if (good) writeFileAtomic(pointer, `${basename(good.path)}\n`);
  const setAside = bad.replace(/\.safetensors$/, ".diverged.safetensors");
  renameSync(bad, setAside);
  if (!good) rmSync(pointer, { force: true });
  return { lastGood: good?.path, setAside };
}

function parseProgress(meta: Record<string, unknown>, path: string): TrainProgress {
  const t = meta.train as Partial<TrainProgress> | undefined;
  const isCount = (v: unknown): v is number =>
    typeof v === "number" && Number.isInteger(v) && v >= 0;
  if (
    meta.format !== FORMAT ||
    !t ||
    !isCount(t.step) ||
    !isCount(t.epoch) ||
    !isCount(t.stepInEpoch) ||
    !(t.stepsPerEpoch === null || isCount(t.stepsPerEpoch)) ||
    typeof t.images !== "number" ||
    typeof t.elapsedSec !== "number"
  ) {
    throw new IOError(
      `${path}: not a @sit/train checkpoint (expected meta.format "${FORMAT}" with train progress, got format ${JSON.stringify(meta.format)})`,
    );
  }
  return t as TrainProgress;
}

/** Read one checkpoint file; throws an IOError naming it if it is truncated, corrupt or foreign. */
export async function loadCheckpointFile(
  path: string,
  io: CheckpointIO = defaultCheckpointIO,
): Promise<LoadedCheckpoint> {
  let raw: Awaited<ReturnType<CheckpointIO["load"]>>;
  try {
    raw = await io.load(path);
  } catch (err) {
    const msg = (err as Error).message;
    throw new IOError(msg.includes(path) ? msg : `${path}: unreadable checkpoint: ${msg}`, {
      cause: err,
    });
  }
  let progress: TrainProgress;
  try {
    progress = parseProgress(raw.meta, path);
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

/** Options of {@link resumeFrom}. */
export interface ResumeFromOptions {
  io?: CheckpointIO;
  /** Told about every checkpoint skipped as unreadable; `console.warn` by default. */
  onWarning?: (message: string) => void;
}

/**
 * Find and read the checkpoint to resume from.
 *
 * - `target` is a checkpoint **file**: read exactly it; a truncated or corrupt file is refused
 *   with an IOError that names it.
 * - `target` is a **directory**: try the checkpoint that `latest` names, then the others from the
 *   newest down, skipping each unreadable one with a warning that names it. Resolves `undefined`
 *   when the directory holds no checkpoint (or does not exist); throws when every one is unreadable.
 */
export async function resumeFrom(
  target: string,
  options: ResumeFromOptions = {},
): Promise<LoadedCheckpoint | undefined> {
  const io = options.io ?? defaultCheckpointIO;
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  if (!existsSync(target)) return undefined;
  if (!statSync(target).isDirectory()) return loadCheckpointFile(target, io);

  const candidates: string[] = [];
  const pointer = join(target, LATEST_POINTER);
  if (existsSync(pointer)) {
    const name = readFileSync(pointer, "utf8").trim();
    if (NAME_RE.test(name) && existsSync(join(target, name))) candidates.push(join(target, name));
    else
      warn(`${pointer} names ${JSON.stringify(name)}, which is not a checkpoint here; ignoring it`);
  }
  for (const c of listCheckpoints(target).reverse())
    if (!candidates.includes(c.path)) candidates.push(c.path);
  if (candidates.length === 0) return undefined;

  const failures: string[] = [];
  for (const path of candidates) {
    try {
      return await loadCheckpointFile(path, io);
    } catch (err) {
      failures.push(path);
      warn(`skipping unreadable checkpoint ${path}: ${(err as Error).message}`);
    }
  }
  throw new IOError(
    `resumeFrom: no readable checkpoint in ${target} (all ${failures.length} failed: ${failures.map((p) => basename(p)).join(", ")})`,
  );
}
