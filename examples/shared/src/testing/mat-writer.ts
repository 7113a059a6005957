/**
 * A minimal MATLAB v5 `.mat` writer (uncompressed, little-endian) for test fixtures in the real
 * formats of Flowers-102 (`imagelabels.mat`, `setid.mat`) and the Stanford Cars devkit (struct
 * arrays of annotations, a cell array of class names). Layout per the MAT-File Format reference:
 * a 128-byte header, then one miMATRIX element per variable whose sub-elements (array flags,
 * dimensions, name, data) are each padded to 8 bytes.
 */
export type MatInput =
  | { kind: "double"; values: number[] }
  | { kind: "char"; text: string }
  | { kind: "cell"; cells: MatInput[] }
  | { kind: "struct"; elements: Record<string, MatInput>[] };

const MI_INT8 = 1;
const MI_UINT16 = 4;
const MI_INT32 = 5;
const MI_UINT32 = 6;
const MI_DOUBLE = 9;
const MI_MATRIX = 14;
const CLASS = { cell: 1, struct: 2, char: 4, double: 6 } as const;

function element(type: number, data: Uint8Array): Uint8Array {
  const padded = Math.ceil(data.length / 8) * 8;
  const out = new Uint8Array(8 + padded);
  const view = new DataView(out.buffer);
  view.setUint32(0, type, true);
  view.setUint32(4, data.length, true);
  out.set(data, 8);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function int32s(values: number[]): Uint8Array {
  const b = new Uint8Array(4 * values.length);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => {
    v.setInt32(4 * i, x, true);
  });
  return b;
}

function matrix(name: string, value: MatInput): Uint8Array {
  const flags = new Uint8Array(8);
  new DataView(flags.buffer).setUint32(0, CLASS[value.kind], true);
  let dims: number[];
  const body: Uint8Array[] = [];
  if (value.kind === "double") {
    dims = [1, value.values.length];
    const b = new Uint8Array(8 * value.values.length);
    const v = new DataView(b.buffer);
    value.values.forEach((x, i) => {
      v.setFloat64(8 * i, x, true);
    });
    body.push(element(MI_DOUBLE, b));
  } else if (value.kind === "char") {
    dims = [1, value.text.length];
    const b = new Uint8Array(2 * value.text.length);
    const v = new DataView(b.buffer);
    for (let i = 0; i < value.text.length; i++) v.setUint16(2 * i, value.text.charCodeAt(i), true);
    body.push(element(MI_UINT16, b));
  } else if (value.kind === "cell") {
    dims = [1, value.cells.length];
    for (const c of value.cells) body.push(matrix("", c));
  } else {
    dims = [1, value.elements.length];
    const fields = Object.keys(value.elements[0] ?? {});
    const width = 32;
    body.push(element(MI_INT32, int32s([width])));
    const names = new Uint8Array(width * fields.length);
    fields.forEach((f, i) => {
      names.set(new TextEncoder().encode(f.slice(0, width - 1)), i * width);
    });
    body.push(element(MI_INT8, names));
    for (const e of value.elements) for (const f of fields) body.push(matrix("", e[f]));
  }
  return element(
    MI_MATRIX,
    concat([
      element(MI_UINT32, flags),
      element(MI_INT32, int32s(dims)),
      element(MI_INT8, new TextEncoder().encode(name)),
      ...body,
    ]),
  );
}

/** The bytes of a MATLAB v5 file holding `variables`. */
export function encodeMat(variables: Record<string, MatInput>): Uint8Array {
  const header = new Uint8Array(128).fill(32);
  header.set(new TextEncoder().encode("MATLAB 5.0 MAT-file, written by SiT.js tests"));
  header.fill(0, 116, 124);
  new DataView(header.buffer).setUint16(124, 0x0100, true);
  header[126] = "I".charCodeAt(0);
  header[127] = "M".charCodeAt(0);
  return concat([header, ...Object.entries(variables).map(([n, v]) => matrix(n, v))]);
}
