// Node only (@sit/core/node): node:fs, and process ids to tell a live writer from a dead one.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { IOError } from "@sit/core";

let counter = 0;

// `.<target name>.<writer pid>.<ms>.<counter>.tmp`: the pid tells whether the writer still runs.
const TEMP_RE = /^\..+\.(\d+)\.\d+\.\d+\.tmp$/;

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0); // signal 0 tests for existence and sends nothing
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Write a file so that a crash or kill at any moment leaves either the old file or the complete
 * new one, never a partial file: write to a temporary sibling, fsync it, rename over the target,
 * then fsync the directory so the rename itself is durable.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.${counter++}.tmp`);
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "w");
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new IOError(`writeFileAtomic: could not write ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    const dfd = openSync(dir, "r");
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  }
}

/**
 * Delete the temporary files that {@link writeFileAtomic} left in `dir` when its writer was
 * killed mid-write (a kill during a checkpoint leaves a full-size orphan). Only files whose
 * writer process no longer runs on this machine are removed; a live writer's file, foreign files
 * and sub-folders are left alone. Returns the removed paths and their total size.
 */
export function removeStaleTempFiles(dir: string): { removed: string[]; bytes: number } {
  const removed: string[] = [];
  let bytes = 0;
  if (!existsSync(dir)) return { removed, bytes };
  for (const name of readdirSync(dir)) {
    const m = TEMP_RE.exec(name);
    if (!m || isRunning(Number(m[1]))) continue;
    const path = join(dir, name);
    try {
      const st = statSync(path);
      if (!st.isFile()) continue;
      rmSync(path, { force: true });
      removed.push(path);
      bytes += st.size;
    } catch {
      // Gone already (another run cleaning up), or not ours to delete: nothing to do.
    }
  }
  return { removed, bytes };
}
