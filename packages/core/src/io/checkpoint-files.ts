import { readFileSync } from "node:fs";
import {
  type Checkpoint,
  IOError,
  invalidArgument,
  parseCheckpoint,
  serializeCheckpoint,
} from "@sit/core";
import { writeFileAtomic } from "./atomic";

// Node only (@sit/core/node): checkpoints on disk. The bytes are the main entry's
// serializeCheckpoint/parseCheckpoint, the same a web page downloads and uploads.

/**
 * Write a checkpoint as a safetensors file whose metadata holds `meta` (JSON) and a SHA-256 of the
 * contents, atomically (temp file + fsync + rename): a crash mid-write leaves the previous file.
 */
export function saveCheckpoint(path: string, checkpoint: Checkpoint): void {
  if (typeof path !== "string" || path.length === 0)
    throw invalidArgument("path", path, "a non-empty file path");
  writeFileAtomic(path, serializeCheckpoint(checkpoint));
}

/**
 * Read a checkpoint written by {@link saveCheckpoint}, verifying its checksum. A missing,
 * truncated or corrupt file (or a safetensors file that is not a SiT checkpoint) throws an
 * IOError that names the file. The caller owns (disposes) the returned tensors.
 */
export function loadCheckpoint<M = unknown>(path: string): Checkpoint<M> {
  if (typeof path !== "string" || path.length === 0)
    throw invalidArgument("path", path, "a non-empty file path");
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new IOError(`loadCheckpoint: cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseCheckpoint<M>(bytes, path);
}
