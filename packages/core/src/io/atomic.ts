import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, basename, join } from "node:path";
import { IOError } from "../errors";

let counter = 0;

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
