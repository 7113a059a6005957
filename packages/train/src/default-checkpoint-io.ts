// TEMPORARY binding until @sit/core exports saveCheckpoint/loadCheckpoint: safetensors with the
// JSON meta and a CRC-32C of (meta + data section) in the header metadata.
import { readFileSync } from "node:fs";
import {
  IOError,
  parseSafetensors,
  rawToTensor,
  serializeSafetensors,
  writeFileAtomic,
} from "@sit/core";
import type * as tf from "@tensorflow/tfjs";
import type { CheckpointIO } from "./checkpoint-io";
import { crc32c } from "./tensorboard/crc32c";

function dataSection(bytes: Uint8Array): Uint8Array {
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return bytes.subarray(8 + headerLen);
}

function checksum(meta: string, data: Uint8Array): string {
  const m = new TextEncoder().encode(meta);
  const all = new Uint8Array(m.length + data.length);
  all.set(m);
  all.set(data, m.length);
  return crc32c(all).toString(16).padStart(8, "0");
}

export const defaultCheckpointIO: CheckpointIO = {
  save(path, state) {
    const meta = JSON.stringify(state.meta);
    const first = serializeSafetensors(state.tensors, { meta });
    const sum = checksum(meta, dataSection(first));
    writeFileAtomic(path, serializeSafetensors(state.tensors, { meta, crc32c: sum }));
  },
  load(path) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw new IOError(`loadCheckpoint: cannot read ${path}: ${(err as Error).message}`);
    }
    const file = parseSafetensors(bytes, path);
    const meta = file.metadata.meta ?? "";
    if (file.metadata.crc32c !== checksum(meta, dataSection(bytes)))
      throw new IOError(`loadCheckpoint: ${path}: checksum mismatch (corrupt checkpoint)`);
    const tensors: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(file.tensors)) tensors[k] = rawToTensor(v);
    return { tensors, meta: JSON.parse(meta) as Record<string, unknown> };
  },
};
