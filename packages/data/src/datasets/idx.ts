import { join } from "node:path";
import { ConfigError, IOError, ShapeError } from "@sit/core";
import type { Dataset, Sample } from "../types";
import { firstExisting, readMaybeGzip } from "./records";

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
function idxHeader(bytes: Uint8Array, name: string) {
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

/** Parse IDX bytes (already gunzipped). `name` is used in error messages. */
export function parseIdx(bytes: Uint8Array, name = "IDX data"): IdxArray {
  const { dtype, size, shape, count, headerSize, expected, view } = idxHeader(bytes, name);
  if (bytes.length < expected)
    throw new IOError(
      `${name}: truncated: shape [${shape}] needs ${expected} bytes, the file has ${bytes.length}`,
    );
  let data: IdxArray["data"];
  if (dtype === "uint8") data = bytes.slice(headerSize, expected);
  else if (dtype === "int8") data = new Int8Array(bytes.slice(headerSize, expected).buffer);
  else {
    const out =
      dtype === "int16"
        ? new Int16Array(count)
        : dtype === "int32"
          ? new Int32Array(count)
          : dtype === "float32"
            ? new Float32Array(count)
            : new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const o = headerSize + i * size;
      out[i] =
        dtype === "int16"
          ? view.getInt16(o, false)
          : dtype === "int32"
            ? view.getInt32(o, false)
            : dtype === "float32"
              ? view.getFloat32(o, false)
              : view.getFloat64(o, false);
    }
    data = out;
  }
  return { dtype, shape, data };
}

/** Read an IDX file, gzipped or raw. */
export function readIdx(path: string): IdxArray {
  // A gzipped file may inflate to the size its IDX header declares, and no more.
  const limit = {
    headBytes: 4 + 4 * 255,
    maxBytes: (head: Uint8Array) => idxHeader(head, path).expected,
  };
  return parseIdx(readMaybeGzip(path, limit), path);
}

/** Largest label (a loop: spreading 10⁵ labels into Math.max overflows the stack). */
export function maxLabel(labels: ArrayLike<number>): number {
  let m = -1;
  for (let i = 0; i < labels.length; i++) if (labels[i] > m) m = labels[i];
  return m;
}

/**
 * Images held in memory as one uint8 array `[N, H, W, C]` (HWC per image), with optional labels.
 * `get` is synchronous.
 */
export class ArrayDataset implements Dataset {
  readonly length: number;
  readonly numClasses?: number;
  constructor(
    readonly images: Uint8Array,
    readonly height: number,
    readonly width: number,
    readonly channels: number,
    readonly labels?: Int32Array,
    readonly classNames?: readonly string[],
  ) {
    const per = height * width * channels;
    if (per <= 0 || images.length % per !== 0)
      throw new ShapeError(
        `images: expected a multiple of ${height}×${width}×${channels} values, got ${images.length}`,
      );
    this.length = images.length / per;
    if (labels && labels.length !== this.length)
      throw new ShapeError(
        `labels: expected ${this.length} labels (one per image), got ${labels.length}`,
      );
    if (classNames) this.numClasses = classNames.length;
    else if (labels && labels.length > 0) this.numClasses = maxLabel(labels) + 1;
  }
  get(index: number): Sample {
    if (!Number.isInteger(index) || index < 0 || index >= this.length)
      throw new ConfigError(`index: expected an integer in [0, ${this.length}), got ${index}`);
    const per = this.height * this.width * this.channels;
    const sample: Sample = {
      image: this.images.subarray(index * per, (index + 1) * per),
      height: this.height,
      width: this.width,
      channels: this.channels,
    };
    if (this.labels) sample.label = this.labels[index];
    return sample;
  }
}

/**
 * A dataset from an IDX images file (`[N, H, W]` or `[N, H, W, C]` uint8) and an optional IDX
 * labels file (`[N]`), each gzipped or raw. The counts must agree.
 */
export function loadIdxDataset(options: {
  images: string;
  labels?: string;
  classNames?: readonly string[];
}): ArrayDataset {
  const images = readIdx(options.images);
  if (images.dtype !== "uint8" || (images.shape.length !== 3 && images.shape.length !== 4))
    throw new IOError(
      `${options.images}: expected uint8 images of shape [N, H, W] or [N, H, W, C], got ${images.dtype} [${images.shape}]`,
    );
  const [n, h, w, c = 1] = images.shape;
  let labels: Int32Array | undefined;
  if (options.labels) {
    const l = readIdx(options.labels);
    if (l.shape.length !== 1 || l.shape[0] !== n)
      throw new IOError(
        `${options.labels}: expected ${n} labels to match ${options.images}, got shape [${l.shape}]`,
      );
    labels = Int32Array.from(l.data as ArrayLike<number>);
  }
  return new ArrayDataset(images.data as Uint8Array, h, w, c, labels, options.classNames);
}

/** Fashion-MNIST's ten classes, index = label. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

/** MNIST's ten classes ("0" … "9"). */
export const MNIST_CLASSES: readonly string[] = Array.from({ length: 10 }, (_, i) => String(i));

/**
 * MNIST or Fashion-MNIST from a folder holding the distributed files
 * (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-…`).
 */
export function loadMnistLike(
  dir: string,
  split: "train" | "test",
  classNames: readonly string[] = MNIST_CLASSES,
): ArrayDataset {
  if (split !== "train" && split !== "test")
    throw new ConfigError(`split: expected "train" or "test", got ${JSON.stringify(split)}`);
  const prefix = split === "train" ? "train" : "t10k";
  const file = (kind: string) => {
    const base = join(dir, `${prefix}-${kind}`);
    return firstExisting(`${split} ${kind.split("-")[0]}`, [`${base}.gz`, base]);
  };
  return loadIdxDataset({
    images: file("images-idx3-ubyte"),
    labels: file("labels-idx1-ubyte"),
    classNames,
  });
}

/** Fashion-MNIST (Zalando Research, MIT licence) from a folder of its IDX files. */
export function loadFashionMnist(dir: string, split: "train" | "test"): ArrayDataset {
  return loadMnistLike(dir, split, FASHION_MNIST_CLASSES);
}
