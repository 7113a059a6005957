import { readFileSync } from "node:fs";
import type * as tf from "@tensorflow/tfjs";
import {
  IOError,
  type RawTensor,
  type SafetensorsFile,
  parseSafetensors,
  rawToTensor,
  serializeSafetensors,
} from "@sit/core";
import { writeFileAtomic } from "./atomic";

// Node only (@sit/core/node): safetensors files on disk. The format itself (parse, serialise) is
// the main entry's, bytes in and bytes out, shared with web pages. Shared code comes through the
// package name, never a relative import, so this entry's build carries no second copy of it.

/** Read and parse a safetensors file. */
export function readSafetensors(path: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new IOError(`readSafetensors: cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return parseSafetensors(bytes, path);
}

/** Load every tensor of a safetensors file as tfjs tensors. The caller owns (disposes) them. */
export function loadSafetensors(path: string): {
  tensors: Record<string, tf.Tensor>;
  metadata: Record<string, string>;
} {
  const f = readSafetensors(path);
  const tensors: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(f.tensors)) tensors[k] = rawToTensor(v);
  return { tensors, metadata: f.metadata };
}

/** Write tensors to a safetensors file atomically. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, tf.Tensor | RawTensor>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
