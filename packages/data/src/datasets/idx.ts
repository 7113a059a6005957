import { ConfigError, IOError, ShapeError } from "@sit/core";
import type { Dataset, Sample } from "../types";
import { type IdxArray, idxHeader, maxLabel } from "./idx-header";

export type { IdxArray } from "./idx-header";

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
