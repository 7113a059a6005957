import * as tf from "@tensorflow/tfjs";
import { IOError, describeValue } from "../errors";

// Bytes in, bytes out: this module runs unchanged in a web page and under Node. Reading and
// writing files is @sit/core/node's (safetensors-files.ts).
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/** safetensors dtypes this reader understands, and the typed array each becomes. */
export type SafetensorsDtype = "F32" | "F64" | "F16" | "I32" | "I64" | "U8" | "I8" | "I16" | "BOOL";

/** One tensor as raw data (no tfjs involved), in row-major order. */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data:
    | Float32Array
    | Float64Array
    | Int32Array
    | BigInt64Array
    | Uint8Array
    | Int8Array
    | Int16Array
    | Uint16Array;
}

/** A parsed safetensors file: tensors by name plus the string metadata. */
export interface SafetensorsFile {
  tensors: Record<string, RawTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<SafetensorsDtype, number> = {
  F32: 4,
  F64: 8,
  F16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  I8: 1,
  I16: 2,
  BOOL: 1,
};

function view(dtype: SafetensorsDtype, bytes: Uint8Array): RawTensor["data"] {
  // Copy into a fresh aligned buffer: header lengths make offsets arbitrary.
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  const buf = copy.buffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buf);
    case "F64":
      return new Float64Array(buf);
    case "F16":
      return new Uint16Array(buf);
    case "I32":
      return new Int32Array(buf);
    case "I64":
      return new BigInt64Array(buf);
    case "I16":
      return new Int16Array(buf);
    case "I8":
      return new Int8Array(buf);
    case "U8":
    case "BOOL":
      return new Uint8Array(buf);
  }
}

type Span = { name: string; begin: number; end: number };

/** Two tensors may not share bytes (a writer never does; a forged header could). */
function checkDisjoint(spans: Span[], source: string): void {
  const sorted = spans.filter((s) => s.end > s.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    if (b.begin < a.end)
      throw new IOError(
        `${source}: tensors "${a.name}" [${a.begin}, ${a.end}) and "${b.name}" [${b.begin}, ${b.end}) overlap in the data section`,
      );
  }
}

/** Parse safetensors bytes. `source` names the file in error messages. */
export function parseSafetensors(bytes: Uint8Array, source = "<buffer>"): SafetensorsFile {
  if (bytes.length < 8)
    throw new IOError(
      `${source}: truncated safetensors file (${bytes.length} bytes, expected at least an 8-byte header length)`,
    );
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(dv.getBigUint64(0, true));
  if (headerLen > bytes.length - 8) {
    throw new IOError(
      `${source}: truncated safetensors file (header says ${headerLen} header bytes, only ${bytes.length - 8} follow)`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(utf8Decoder.decode(bytes.subarray(8, 8 + headerLen)));
  } catch (err) {
    throw new IOError(
      `${source}: malformed safetensors header (not JSON: ${(err as Error).message})`,
    );
  }
  const base = 8 + headerLen;
  const dataLen = bytes.length - base;
  const tensors: Record<string, RawTensor> = {};
  const spans: Span[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const dtype = e.dtype as SafetensorsDtype;
    if (!(dtype in BYTES))
      throw new IOError(
        `${source}: tensor "${name}": unsupported dtype ${describeValue(e.dtype)} (expected one of ${Object.keys(BYTES).join(", ")})`,
      );
    if (!Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) {
      throw new IOError(
        `${source}: tensor "${name}": malformed header entry ${describeValue(entry)}`,
      );
    }
    const [begin, end] = e.data_offsets;
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin)
      throw new IOError(
        `${source}: tensor "${name}": data_offsets ${describeValue(e.data_offsets)} must be two integers 0 ≤ begin ≤ end`,
      );
    const expected = e.shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
    if (end - begin !== expected)
      throw new IOError(
        `${source}: tensor "${name}": data_offsets span ${end - begin} bytes, shape [${e.shape}] × ${dtype} needs ${expected}`,
      );
    if (end > dataLen)
      throw new IOError(
        `${source}: truncated safetensors file: tensor "${name}" ends at byte ${end} of the data section, which has only ${dataLen} bytes`,
      );
    spans.push({ name, begin, end });
    tensors[name] = {
      dtype,
      shape: e.shape,
      data: view(dtype, bytes.subarray(base + begin, base + end)),
    };
  }
  checkDisjoint(spans, source);
  return { tensors, metadata };
}

/** Convert a raw tensor to a tfjs tensor (F64/I64 narrowed to float32/int32, F16 widened). */
export function rawToTensor(raw: RawTensor): tf.Tensor {
  const { dtype, shape, data } = raw;
  switch (dtype) {
    case "F32":
      return tf.tensor(data as Float32Array, shape, "float32");
    case "F64":
      return tf.tensor(Float32Array.from(data as Float64Array), shape, "float32");
    case "F16":
      return tf.tensor(halfToFloat(data as Uint16Array), shape, "float32");
    case "I64":
      return tf.tensor(
        Int32Array.from(data as BigInt64Array, (v) => Number(v)),
        shape,
        "int32",
      );
    case "BOOL":
      return tf.tensor(data as Uint8Array, shape, "bool");
    default:
      return tf.tensor(Int32Array.from(data as ArrayLike<number>), shape, "int32");
  }
}

function halfToFloat(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const v = h[i];
    const s = v & 0x8000 ? -1 : 1;
    const e = (v >> 10) & 0x1f;
    const m = v & 0x3ff;
    out[i] =
      e === 0
        ? s * 2 ** -14 * (m / 1024)
        : e === 31
          ? m
            ? Number.NaN
            : s * Number.POSITIVE_INFINITY
          : s * 2 ** (e - 15) * (1 + m / 1024);
  }
  return out;
}

type Serializable = tf.Tensor | RawTensor;

/** A tfjs tensor (or an already raw tensor) as raw data for the safetensors writer. */
export function toRawTensor(t: tf.Tensor | RawTensor): RawTensor {
  if (!(t instanceof tf.Tensor)) return t;
  const data = t.dataSync();
  if (t.dtype === "float32") return { dtype: "F32", shape: t.shape, data: data as Float32Array };
  if (t.dtype === "int32") return { dtype: "I32", shape: t.shape, data: data as Int32Array };
  if (t.dtype === "bool")
    return { dtype: "BOOL", shape: t.shape, data: Uint8Array.from(data as ArrayLike<number>) };
  throw new IOError(
    `serializeSafetensors: tensor dtype ${t.dtype} cannot be written (expected float32, int32 or bool)`,
  );
}

/** Serialise tensors (tfjs or raw) and string metadata to safetensors bytes (names sorted, 8-byte aligned header). */
export function serializeSafetensors(
  tensors: Record<string, Serializable>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const raws = names.map((n) => toRawTensor(tensors[n]));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  names.forEach((n, i) => {
    const r = raws[i];
    const len = r.data.byteLength;
    header[n] = { dtype: r.dtype, shape: r.shape, data_offsets: [offset, offset + len] };
    offset += len;
  });
  const json = utf8Encoder.encode(JSON.stringify(header));
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  const headerBytes = new Uint8Array(json.length + ((8 - ((8 + json.length) % 8)) % 8)).fill(0x20);
  headerBytes.set(json, 0);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const r of raws) {
    out.set(new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength), pos);
    pos += r.data.byteLength;
  }
  return out;
}
