import { existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { IOError } from "@sit/core";
import { loadCheckpoint, saveCheckpoint, writeFileAtomic } from "@sit/core/node";
import {
  type CheckpointIO,
  LATEST_POINTER,
  type LoadedCheckpoint,
  type RecipeState,
  type ResumeFromOptions,
  type TrainProgress,
  type WriteCheckpointOptions,
  checkpointCandidates,
  checkpointFileName,
  checkpointStep,
  latestPointer,
  readTrainCheckpoint,
  trainCheckpoint,
} from "@sit/train";

// Node only (@sit/train/node): a run's checkpoint folder on disk. What one checkpoint holds, and
// its bytes, are the main entry's (checkpoint-format.ts).

/** @sit/core's checkpoint format: saveCheckpoint / loadCheckpoint of @sit/core/node. */
export const defaultCheckpointIO: CheckpointIO = {
  save: (path, state) => saveCheckpoint(path, state),
  load: (path) => loadCheckpoint<Record<string, unknown>>(path),
};

/** Checkpoint files in `dir`, oldest (fewest steps) first. Temporary and foreign files are ignored. */
export function listCheckpoints(dir: string): Array<{ path: string; step: number }> {
  if (!existsSync(dir)) return [];
  const out: Array<{ path: string; step: number }> = [];
  for (const name of readdirSync(dir)) {
    const step = checkpointStep(name);
    if (step !== undefined) out.push({ path: join(dir, name), step });
  }
  return out.sort((a, b) => a.step - b.step);
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
  const checkpoint = trainCheckpoint(
    { recipe: recipeName, progress, versions: options.versions ?? {} },
    state,
  );
  await io.save(path, checkpoint);
  writeFileAtomic(join(dir, LATEST_POINTER), latestPointer(name));
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
  if (good) writeFileAtomic(pointer, latestPointer(basename(good.path)));
  const setAside = bad.replace(/\.safetensors$/, ".diverged.safetensors");
  renameSync(bad, setAside);
  if (!good) rmSync(pointer, { force: true });
  return { lastGood: good?.path, setAside };
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
  return readTrainCheckpoint(raw, path);
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

  // The same choice as parseCheckpointFolder makes from a folder's bytes.
  const pointer = join(target, LATEST_POINTER);
  const { order, badPointer } = checkpointCandidates(
    readdirSync(target),
    existsSync(pointer) ? readFileSync(pointer, "utf8") : undefined,
  );
  if (badPointer !== undefined)
    warn(
      `${pointer} names ${JSON.stringify(badPointer)}, which is not a checkpoint here; ignoring it`,
    );
  const candidates = order.map((name) => join(target, name));
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
