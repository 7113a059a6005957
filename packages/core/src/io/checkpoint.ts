import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type * as tf from "@tensorflow/tfjs";
import { IOError, describeValue, invalidArgument } from "../errors";
import { writeFileAtomic } from "./atomic";
import {
  type RawTensor,
  parseSafetensors,
  rawToTensor,
  serializeSafetensors,
  toRawTensor,
} from "./safetensors";

/** Metadata keys of a SiT checkpoint inside the safetensors `__metadata__`. */
const FORMAT_KEY = "sit.format";
const FORMAT = "sit-checkpoint/1";
const META_KEY = "sit.meta";
const CHECKSUM_KEY = "sit.sha256";

/** What {@link saveCheckpoint} writes and {@link loadCheckpoint} returns. */
export interface Checkpoint<M = unknown> {
  /** Tensors by name (model parameters, optimiser moments, …). */
  tensors: Record<string, tf.Tensor>;
  /** Anything JSON-serialisable (step, config, Rng states, schedules, …). */
  meta: M;
}

// The checksum covers the data section, the tensor table (name, dtype, shape, data_offsets) and
// the meta JSON, so a flipped byte anywhere a reader depends on is detected — including offsets
// swapped between two tensors of the same size, which leave every other byte as it was.
function checksum(data: Uint8Array, table: string, metaJson: string): string {
  return createHash("sha256").update(data).update(table).update(metaJson).digest("hex");
}

type HeaderEntry = { dtype: string; shape: number[]; data_offsets: [number, number] };

function tensorEntries(header: Record<string, unknown>): Array<[string, HeaderEntry]> {
  return Object.keys(header)
    .filter((k) => k !== "__metadata__")
    .sort()
    .map((k) => [k, header[k] as HeaderEntry]);
}

/** The table hashed; `withOffsets: false` is the one of checkpoints written before offsets were hashed. */
function tensorTable(rows: Array<[string, HeaderEntry]>, withOffsets = true): string {
  return JSON.stringify(
    rows.map(([k, e]) =>
      withOffsets ? [k, e.dtype, e.shape, e.data_offsets] : [k, e.dtype, e.shape],
    ),
  );
}

/** Tensors back to back in sorted-name order from byte 0: the only layout the writer produces. */
function isWriterLayout(rows: Array<[string, HeaderEntry]>): boolean {
  let at = 0;
  for (const [, e] of rows) {
    if (e.data_offsets[0] !== at) return false;
    at = e.data_offsets[1];
  }
  return true;
}

function readHeader(bytes: Uint8Array): { header: Record<string, unknown>; dataStart: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + len)).toString("utf8"));
  return { header, dataStart: 8 + len };
}

/**
 * Write a checkpoint as a safetensors file whose metadata holds `meta` (JSON) and a SHA-256 of the
 * contents, atomically (temp file + fsync + rename): a crash mid-write leaves the previous file.
 */
export function saveCheckpoint(path: string, checkpoint: Checkpoint): void {
  if (typeof path !== "string" || path.length === 0)
    throw invalidArgument("path", path, "a non-empty file path");
  if (!checkpoint || typeof checkpoint !== "object" || typeof checkpoint.tensors !== "object")
    throw invalidArgument("checkpoint", checkpoint, "{ tensors: Record<string, Tensor>, meta }");
  let metaJson: string;
  try {
    metaJson = JSON.stringify(checkpoint.meta ?? null);
  } catch (err) {
    throw invalidArgument(
      "checkpoint.meta",
      checkpoint.meta,
      `JSON-serialisable data (${(err as Error).message})`,
    );
  }
  if (metaJson === undefined)
    throw invalidArgument("checkpoint.meta", checkpoint.meta, "JSON-serialisable data");
  const raws: Record<string, RawTensor> = {};
  for (const [name, t] of Object.entries(checkpoint.tensors)) raws[name] = toRawTensor(t);
  // The writer lays tensors out in sorted-name order with no gaps: hash them in that order.
  const names = Object.keys(raws).sort();
  const hash = createHash("sha256");
  const rows: Array<[string, HeaderEntry]> = [];
  let offset = 0;
  for (const n of names) {
    const d = raws[n].data;
    hash.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    rows.push([
      n,
      { dtype: raws[n].dtype, shape: raws[n].shape, data_offsets: [offset, offset + d.byteLength] },
    ]);
    offset += d.byteLength;
  }
  const sum = hash.update(tensorTable(rows)).update(metaJson).digest("hex");
  writeFileAtomic(
    path,
    serializeSafetensors(raws, { [FORMAT_KEY]: FORMAT, [META_KEY]: metaJson, [CHECKSUM_KEY]: sum }),
  );
}

/**
 * Read a checkpoint written by {@link saveCheckpoint}, verifying its checksum. A missing,
 * truncated or corrupt file (or a safetensors file that is not a SiT checkpoint) throws an
 * IOError that names the file. The caller owns (disposes) the returned tensors.
 */
export function loadCheckpoint<M = unknown>(path: string): Checkpoint<M> {
  if (typeof path !== "string" || path.length === 0)
    throw invalidArgument("path", path, "a non-empty file path");
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new IOError(`loadCheckpoint: cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const parsed = parseSafetensors(bytes, path);
  const meta = parsed.metadata;
  if (meta[FORMAT_KEY] !== FORMAT || typeof meta[CHECKSUM_KEY] !== "string")
    throw new IOError(
      `${path}: not a SiT checkpoint (expected metadata ${FORMAT_KEY}=${FORMAT} with a ${CHECKSUM_KEY} checksum, got ${describeValue(meta[FORMAT_KEY])})`,
    );
  const { header, dataStart } = readHeader(bytes);
  const metaJson = meta[META_KEY] ?? "null";
  const rows = tensorEntries(header);
  const data = bytes.subarray(dataStart);
  const actual = checksum(data, tensorTable(rows), metaJson);
  // Checkpoints from before the table held the offsets: their layout must be the writer's, which
  // the old table (names, dtypes, shapes) determines, so nothing the reader uses goes unchecked.
  const legacy =
    actual !== meta[CHECKSUM_KEY] &&
    isWriterLayout(rows) &&
    checksum(data, tensorTable(rows, false), metaJson) === meta[CHECKSUM_KEY];
  if (actual !== meta[CHECKSUM_KEY] && !legacy)
    throw new IOError(
      `${path}: corrupt checkpoint: SHA-256 of the contents is ${actual}, the file records ${meta[CHECKSUM_KEY]}`,
    );
  let value: M;
  try {
    value = JSON.parse(metaJson) as M;
  } catch (err) {
    throw new IOError(`${path}: corrupt checkpoint metadata (${(err as Error).message})`);
  }
  const tensors: Record<string, tf.Tensor> = {};
  for (const [k, raw] of Object.entries(parsed.tensors)) tensors[k] = rawToTensor(raw);
  return { tensors, meta: value };
}
