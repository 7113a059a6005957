import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { IOError } from "@sit/core";
import type { ArrayDataset } from "@sit/data";
import { loadFashionMnist } from "./idx-files";

// Node only (@sit/data/node): the Fashion-MNIST subset bundled in the repository, found on disk.

/** Folder of the Fashion-MNIST subset bundled in the SiT.js repository (relative to its root). */
export const BUNDLED_FASHION_MNIST_DIR = join("data", "fashion-mnist-subset");

/**
 * Find the repository's bundled Fashion-MNIST subset: `start` itself when it holds the IDX files,
 * else `<dir>/data/fashion-mnist-subset` for `start` and each of its ancestors. The caller passes
 * the starting path (e.g. the quick start's own folder); nothing outside that chain is searched.
 */
export function findBundledFashionMnist(start: string): string {
  const marker = "train-images-idx3-ubyte.gz";
  let dir = resolve(start);
  if (existsSync(join(dir, marker))) return dir;
  for (;;) {
    const candidate = join(dir, BUNDLED_FASHION_MNIST_DIR);
    if (existsSync(join(candidate, marker))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new IOError(
    `${start}: no bundled Fashion-MNIST subset found here or in ${BUNDLED_FASHION_MNIST_DIR} of it or its parents`,
  );
}

/** The bundled Fashion-MNIST subset's `split`, located from `start` (see {@link findBundledFashionMnist}). */
export function loadBundledFashionMnist(start: string, split: "train" | "test"): ArrayDataset {
  return loadFashionMnist(findBundledFashionMnist(start), split);
}
