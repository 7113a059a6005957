import { readFileSync } from "node:fs";
import { inflateSync } from "node:zlib";
import { IOError } from "@sit/core";
import { inflatedHead } from "./inflate";

/**
 * A value read from a MATLAB v5 `.mat` file. Supported: numeric and logical arrays (any integer
 * or float class, real part only), char arrays, cell arrays and struct arrays, in compressed
 * (miCOMPRESSED) or plain elements — what Flowers-102's `imagelabels.mat`/`setid.mat` and the
 * Stanford Cars devkit's annotation files use. Not supported: sparse and object arrays, function
 * handles, and v7.3 files (HDF5), which raise an IOError.
 */
export type MatValue =
  | { kind: "numeric"; className: string; dims: number[]; data: Float64Array }
  | { kind: "char"; dims: number[]; text: string }
  | { kind: "cell"; dims: number[]; cells: MatValue[] }
  | { kind: "struct"; dims: number[]; fields: string[]; elements: Record<string, MatValue>[] };

const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
  UTF8: 16,
  UTF16: 17,
  UTF32: 18,
} as const;

const CLASS_NAMES: Record<number, string> = {
  1: "cell",
  2: "struct",
  3: "object",
  4: "char",
  5: "sparse",
  6: "double",
  7: "single",
  8: "int8",
  9: "uint8",
  10: "int16",
  11: "uint16",
  12: "int32",
  13: "uint32",
  14: "int64",
  15: "uint64",
};

interface Element {
  type: number;
  data: Uint8Array;
  next: number;
}

class Reader {
  constructor(
    private readonly name: string,
    private readonly little: boolean,
  ) {}

  fail(message: string): never {
    throw new IOError(`${this.name}: ${message}`);
  }

  /** Read the data element at `offset` of `buf` (small-element format included). */
  element(buf: Uint8Array, offset: number): Element {
    if (offset + 8 > buf.length) this.fail(`truncated element tag at byte ${offset}`);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const first = view.getUint32(offset, this.little);
    if (first >>> 16 !== 0) {
      // Small data element: size and type packed in one word, data in the next four bytes.
      const size = first >>> 16;
      return {
        type: first & 0xffff,
        data: buf.subarray(offset + 4, offset + 4 + size),
        next: offset + 8,
      };
    }
    const size = view.getUint32(offset + 4, this.little);
    const start = offset + 8;
    if (start + size > buf.length)
      this.fail(
        `truncated element at byte ${offset}: needs ${size} bytes, ${buf.length - start} left`,
      );
    const padded = first === MI.COMPRESSED ? size : Math.ceil(size / 8) * 8;
    return { type: first, data: buf.subarray(start, start + size), next: start + padded };
  }

  numbers(el: Element): Float64Array {
    const { data } = el;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const spec: Record<number, [number, (o: number) => number]> = {
      [MI.INT8]: [1, (o) => view.getInt8(o)],
      [MI.UINT8]: [1, (o) => view.getUint8(o)],
      [MI.INT16]: [2, (o) => view.getInt16(o, this.little)],
      [MI.UINT16]: [2, (o) => view.getUint16(o, this.little)],
      [MI.INT32]: [4, (o) => view.getInt32(o, this.little)],
      [MI.UINT32]: [4, (o) => view.getUint32(o, this.little)],
      [MI.SINGLE]: [4, (o) => view.getFloat32(o, this.little)],
      [MI.DOUBLE]: [8, (o) => view.getFloat64(o, this.little)],
      [MI.INT64]: [8, (o) => Number(view.getBigInt64(o, this.little))],
      [MI.UINT64]: [8, (o) => Number(view.getBigUint64(o, this.little))],
    };
    const s = spec[el.type];
    if (!s) this.fail(`unsupported numeric data type ${el.type}`);
    const [size, get] = s;
    const out = new Float64Array(Math.floor(data.length / size));
    for (let i = 0; i < out.length; i++) out[i] = get(i * size);
    return out;
  }

  text(el: Element): string {
    if (el.type === MI.UTF8 || el.type === MI.INT8 || el.type === MI.UINT8)
      return new TextDecoder("utf-8").decode(el.data);
    const codes = this.numbers(el.type === MI.UTF16 ? { ...el, type: MI.UINT16 } : el);
    return String.fromCodePoint(...codes);
  }

  /** Decode one top-level or nested element into `[name, value]`. */
  value(el: Element): [string, MatValue] {
    if (el.type === MI.COMPRESSED) {
      // The inflated element's own tag declares its size: inflate no further than that.
      let inflated: Uint8Array;
      let max = 0;
      try {
        const head = inflatedHead(el.data, 8, "zlib");
        if (head.length < 8) this.fail("truncated compressed element (no element tag inside)");
        const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
        const small = view.getUint32(0, this.little) >>> 16 !== 0;
        max = small ? 8 : 8 + Math.ceil(view.getUint32(4, this.little) / 8) * 8;
        inflated = inflateSync(el.data, { maxOutputLength: max });
      } catch (err) {
        if (err instanceof IOError) throw err;
        if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
          this.fail(
            `compressed element inflates to more than the ${max} bytes its tag declares; refusing to inflate it`,
          );
        this.fail(`corrupt compressed element (${(err as Error).message})`);
      }
      return this.value(this.element(inflated, 0));
    }
    if (el.type !== MI.MATRIX) this.fail(`expected a matrix element, got data type ${el.type}`);
    const buf = el.data;
    if (buf.length === 0)
      return [
        "",
        { kind: "numeric", className: "double", dims: [0, 0], data: new Float64Array(0) },
      ];
    const flags = this.element(buf, 0);
    const flagWord = new DataView(flags.data.buffer, flags.data.byteOffset, 8).getUint32(
      0,
      this.little,
    );
    const classId = flagWord & 0xff;
    const className = CLASS_NAMES[classId] ?? `class ${classId}`;
    const dimsEl = this.element(buf, flags.next);
    const dims = Array.from(this.numbers(dimsEl));
    const nameEl = this.element(buf, dimsEl.next);
    const name = new TextDecoder().decode(nameEl.data);
    const count = dims.reduce((a, b) => a * b, 1);
    let at = nameEl.next;
    if (classId >= 6 && classId <= 15) {
      const real = this.element(buf, at);
      const data = this.numbers(real);
      if (data.length !== count)
        this.fail(
          `array "${name}": expected ${count} values for dims [${dims}], got ${data.length}`,
        );
      return [
        name,
        {
          kind: "numeric",
          className: (flagWord & 0x200) !== 0 ? "logical" : className,
          dims,
          data,
        },
      ];
    }
    if (classId === 4) {
      const chars = Array.from(this.text(this.element(buf, at)));
      const rows = dims[0] ?? 1;
      if (rows <= 1) return [name, { kind: "char", dims, text: chars.join("") }];
      // Column-major: character (r, c) is at c·rows + r; rows are joined with newlines.
      const cols = chars.length / rows;
      const lines: string[] = [];
      for (let r = 0; r < rows; r++) {
        let line = "";
        for (let c = 0; c < cols; c++) line += chars[c * rows + r];
        lines.push(line);
      }
      return [name, { kind: "char", dims, text: lines.join("\n") }];
    }
    if (classId === 1) {
      const cells: MatValue[] = [];
      for (let i = 0; i < count; i++) {
        const cell = this.element(buf, at);
        cells.push(this.value(cell)[1]);
        at = cell.next;
      }
      return [name, { kind: "cell", dims, cells }];
    }
    if (classId === 2) {
      const lenEl = this.element(buf, at);
      const fieldLength = this.numbers(lenEl)[0];
      const namesEl = this.element(buf, lenEl.next);
      const fields: string[] = [];
      for (let o = 0; o + fieldLength <= namesEl.data.length; o += fieldLength) {
        const raw = namesEl.data.subarray(o, o + fieldLength);
        const end = raw.indexOf(0);
        fields.push(new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end)));
      }
      at = namesEl.next;
      const elements: Record<string, MatValue>[] = [];
      for (let i = 0; i < count; i++) {
        const record: Record<string, MatValue> = {};
        for (const field of fields) {
          const f = this.element(buf, at);
          record[field] = this.value(f)[1];
          at = f.next;
        }
        elements.push(record);
      }
      return [name, { kind: "struct", dims, fields, elements }];
    }
    this.fail(`array "${name}": MATLAB class "${className}" is not supported`);
  }
}

/** Parse a MATLAB v5 `.mat` file's bytes into its named variables. */
export function parseMat(bytes: Uint8Array, name = "MAT data"): Record<string, MatValue> {
  if (bytes.length < 128)
    throw new IOError(`${name}: too short for a MATLAB v5 file (${bytes.length} bytes)`);
  const header = new TextDecoder("latin1").decode(bytes.subarray(0, 116));
  if (header.startsWith("MATLAB 7.3"))
    throw new IOError(`${name}: MATLAB v7.3 (HDF5) files are not supported; re-save with -v7`);
  const endian = String.fromCharCode(bytes[126], bytes[127]);
  if (!header.startsWith("MATLAB") || (endian !== "IM" && endian !== "MI"))
    throw new IOError(`${name}: not a MATLAB v5 .mat file`);
  const reader = new Reader(name, endian === "IM");
  const out: Record<string, MatValue> = {};
  let offset = 128;
  while (offset + 8 <= bytes.length) {
    const el = reader.element(bytes, offset);
    const [varName, value] = reader.value(el);
    out[varName] = value;
    offset = el.next;
  }
  return out;
}

/** Read a MATLAB v5 `.mat` file. */
export function readMat(path: string): Record<string, MatValue> {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new IOError(`${path}: cannot read (${(err as Error).message})`, { cause: err });
  }
  return parseMat(bytes, path);
}

/** The numbers of a numeric variable, or an IOError naming the file and the variable. */
export function matNumbers(
  vars: Record<string, MatValue>,
  key: string,
  file: string,
): Float64Array {
  const v = vars[key];
  if (v?.kind !== "numeric")
    throw new IOError(
      `${file}: expected a numeric variable "${key}", found ${v ? v.kind : "none"} (variables: ${Object.keys(vars).join(", ")})`,
    );
  return v.data;
}

/** A scalar number or string of a MAT value (struct fields of the Cars devkit). */
export function matScalar(v: MatValue | undefined): number | string | undefined {
  if (!v) return undefined;
  if (v.kind === "numeric") return v.data.length > 0 ? v.data[0] : undefined;
  if (v.kind === "char") return v.text;
  return undefined;
}
