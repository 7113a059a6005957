import type { Rng } from "@sit/core";
import type { GmmlBlock, GmmlGeometry } from "./blocks";
import type { NormalStream } from "./normal-stream";

/**
 * How GMML fills a corrupted block (values in normalised units): `zeros` (0, i.e. the dataset's mean
 * colour after normalisation), `noise` (i.i.d. N(0, 1)), `shuffle` (a copy of another block of the
 * same size from the same image).
 */
export type GmmlFill = "zeros" | "noise" | "shuffle";

/** The fills that {@link GmmlFill} allows. */
export const GMML_FILLS: readonly GmmlFill[] = ["zeros", "noise", "shuffle"];

/** One image of an NHWC batch: `data[offset + (y·W + x)·C + c]`. */
export interface ImageView {
  data: Float32Array;
  offset: number;
  height: number;
  width: number;
  channels: number;
}

/** Call `fn(firstPixel, length)` for every horizontal run of set pixels of one image's mask. */
export function forEachMaskedRun(
  mask: Uint8Array,
  maskOffset: number,
  height: number,
  width: number,
  fn: (firstPixel: number, length: number) => void,
): void {
  for (let y = 0; y < height; y++) {
    const rowStart = maskOffset + y * width;
    let x = 0;
    while (x < width) {
      while (x < width && mask[rowStart + x] === 0) x++;
      const start = x;
      while (x < width && mask[rowStart + x] !== 0) x++;
      if (x > start) fn(y * width + start, x - start);
    }
  }
}

/** Set every channel of every masked pixel to `value`. */
export function fillMaskedConstant(
  view: ImageView,
  mask: Uint8Array,
  maskOffset: number,
  value: number,
): void {
  const { data, offset, channels: C } = view;
  forEachMaskedRun(mask, maskOffset, view.height, view.width, (p, n) => {
    data.fill(value, offset + p * C, offset + (p + n) * C);
  });
}

/** Replace every channel of every masked pixel with a fresh N(0, 1) draw. */
export function fillMaskedNoise(
  view: ImageView,
  mask: Uint8Array,
  maskOffset: number,
  normals: NormalStream,
): void {
  const { data, offset, channels: C } = view;
  forEachMaskedRun(mask, maskOffset, view.height, view.width, (p, n) => {
    normals.fill(data, offset + p * C, offset + (p + n) * C);
  });
}

/** Copy the masked pixels of `source` (an image of the same size at `sourceOffset`) into `view`. */
export function copyMaskedFrom(
  view: ImageView,
  source: Float32Array,
  sourceOffset: number,
  mask: Uint8Array,
  maskOffset: number,
): void {
  const { data, offset, channels: C } = view;
  forEachMaskedRun(mask, maskOffset, view.height, view.width, (p, n) => {
    data.set(source.subarray(sourceOffset + p * C, sourceOffset + (p + n) * C), offset + p * C);
  });
}

/**
 * The `shuffle` fill for one block, as the reference does it: draw a source corner
 * floor(randint[0, H − h)/a)·a (column likewise) and copy that block of the image *as it is now*
 * (earlier blocks included) over the target block. Records the source on the block.
 */
export function shuffleBlock(
  view: ImageView,
  geometry: GmmlGeometry,
  block: GmmlBlock,
  rng: Rng,
): void {
  const { align: a } = geometry;
  const { data, offset, width: W, channels: C } = view;
  const H = view.height;
  // A block as tall as the image leaves a single source position.
  const sourceRow = H - block.height > 0 ? Math.floor(rng.int(0, H - block.height) / a) * a : 0;
  const sourceCol = W - block.width > 0 ? Math.floor(rng.int(0, W - block.width) / a) * a : 0;
  block.sourceRow = sourceRow;
  block.sourceCol = sourceCol;
  const rowLength = block.width * C;
  // Source and target may overlap: copy through a scratch buffer so every value comes from the
  // image before this block was written (the reference clones the source first).
  const scratch = new Float32Array(block.height * rowLength);
  for (let y = 0; y < block.height; y++) {
    const from = offset + ((sourceRow + y) * W + sourceCol) * C;
    scratch.set(data.subarray(from, from + rowLength), y * rowLength);
  }
  for (let y = 0; y < block.height; y++) {
    const to = offset + ((block.row + y) * W + block.col) * C;
    data.set(scratch.subarray(y * rowLength, (y + 1) * rowLength), to);
  }
}
