import { IOError } from "@sit/core";

// Pure helpers of the IDX format, shared by the main entry (parseIdx, ArrayDataset) and the
// Node entry (readIdx): no state, no class, so a copy in each build is harmless.

/** A parsed IDX file (LeCun's MNIST format): element type, shape and big-endian-decoded data. */
export interface IdxArray {
  dtype: "uint8" | "int8" | "int16" | "int32" | "float32" | "float64";
  shape: number[];
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const IDX_TYPES: Record<number, [IdxArray["dtype"], number]> = {
  8: ["uint8", 1],
  9: ["int8", 1],
  11: ["int16", 2],
  12: ["int32", 4],
  13: ["float32", 4],
  14: ["float64", 8],
};

/** The header of IDX bytes: element type, shape, and the byte length the whole file needs. */
export function idxHeader(bytes: Uint8Array, name: string) {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0)
    throw new IOError(
      `${name}: not an IDX file (expected magic 0x0000, got ${bytes[0]}, ${bytes[1]})`,
    );
  const type = IDX_TYPES[bytes[2]];
  if (!type) throw new IOError(`${name}: unknown IDX element type 0x${bytes[2].toString(16)}`);
  const rank = bytes[3];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerSize = 4 + 4 * rank;
  if (bytes.length < headerSize) throw new IOError(`${name}: truncated IDX header`);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const [dtype, size] = type;
  return { dtype, size, shape, count, headerSize, expected: headerSize + count * size, view };
}

/** Largest label (a loop: spreading 10⁵ labels into Math.max overflows the stack). */
export function maxLabel(labels: ArrayLike<number>): number {
  let m = -1;
  for (let i = 0; i < labels.length; i++) if (labels[i] > m) m = labels[i];
  return m;
}
