import type * as tf from "@tensorflow/tfjs";
import { IOError, describeValue, invalidArgument } from "../errors";
import {
  type RawTensor,
  parseSafetensors,
  rawToTensor,
  serializeSafetensors,
  toRawTensor,
} from "./safetensors";
import { sha256 } from "./sha256";

// A checkpoint as bytes, both ways: the same functions serve a web page (download, upload) and
// Node, whose @sit/core/node writes these bytes to disk atomically (checkpoint-files.ts).

/** Metadata keys of a SiT checkpoint inside the safetensors `__metadata__`. */
const FORMAT_KEY = "sit.format";
const FORMAT = "sit-checkpoint/1";
const META_KEY = "sit.meta";
const CHECKSUM_KEY = "sit.sha256";

/** What {@link serializeCheckpoint} encodes and {@link parseCheckpoint} returns. */
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
  return sha256().update(data).update(table).update(metaJson).digest();
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
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
  return { header, dataStart: 8 + len };
}

/**
 * Encode a checkpoint as safetensors bytes whose metadata holds `meta` (JSON) and a SHA-256 of the
 * contents: the bytes `saveCheckpoint` of `@sit/core/node` writes to a file, and that a web page
 * offers as a download.
 */
export function serializeCheckpoint(checkpoint: Checkpoint): Uint8Array {
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
  const hash = sha256();
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
  const sum = hash.update(tensorTable(rows)).update(metaJson).digest();
  return serializeSafetensors(raws, {
    [FORMAT_KEY]: FORMAT,
    [META_KEY]: metaJson,
    [CHECKSUM_KEY]: sum,
  });
}

/**
 * Decode checkpoint bytes made by {@link serializeCheckpoint}, verifying the checksum. Truncated or
 * corrupt bytes (or a safetensors file that is not a SiT checkpoint) throw an IOError that names
 * `source` (a file name, an upload's name). The caller owns (disposes) the returned tensors.
 */
export function parseCheckpoint<M = unknown>(
  bytes: Uint8Array,
  source = "<buffer>",
): Checkpoint<M> {
  if (!(bytes instanceof Uint8Array))
    throw invalidArgument("bytes", bytes, "a Uint8Array (the checkpoint file's contents)");
  const parsed = parseSafetensors(bytes, source);
  const meta = parsed.metadata;
  if (meta[FORMAT_KEY] !== FORMAT || typeof meta[CHECKSUM_KEY] !== "string")
    throw new IOError(
      `${source}: not a SiT checkpoint (expected metadata ${FORMAT_KEY}=${FORMAT} with a ${CHECKSUM_KEY} checksum, got ${describeValue(meta[FORMAT_KEY])})`,
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
      `${source}: corrupt checkpoint: SHA-256 of the contents is ${actual}, the file records ${meta[CHECKSUM_KEY]}`,
    );
  let value: M;
  try {
    value = JSON.parse(metaJson) as M;
  } catch (err) {
    throw new IOError(`${source}: corrupt checkpoint metadata (${(err as Error).message})`);
  }
  const tensors: Record<string, tf.Tensor> = {};
  for (const [k, raw] of Object.entries(parsed.tensors)) tensors[k] = rawToTensor(raw);
  return { tensors, meta: value };
}
