import { join } from "node:path";
import { ConfigError, IOError } from "@sit/core";
import {
  ArrayDataset,
  FASHION_MNIST_CLASSES,
  type IdxArray,
  MNIST_CLASSES,
  parseIdx,
} from "@sit/data";
import { idxHeader } from "./idx-header";
import { firstExisting, readMaybeGzip } from "./records";

// Node only (@sit/data/node): IDX files on disk. Parsing the bytes is the main entry's parseIdx.

/** Read an IDX file, gzipped or raw. */
export function readIdx(path: string): IdxArray {
  // A gzipped file may inflate to the size its IDX header declares, and no more.
  const limit = {
    headBytes: 4 + 4 * 255,
    maxBytes: (head: Uint8Array) => idxHeader(head, path).expected,
  };
  return parseIdx(readMaybeGzip(path, limit), path);
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
