import type { Rng } from "@sit/core";
import type { GmmlBlock, GmmlGeometry } from "./blocks";
import type { ImageBatch, PixelMask } from "./images";
import type { TokenMask } from "./token-mask";

/** {@link CorruptionPlan.source} value of a pixel set to 0 on every channel. */
export const PLAN_ZERO = -1;

/**
 * A corruption drawn without looking at the images (every random number already taken from the
 * Rng), to be applied where the images live — e.g. in one GPU dispatch — instead of reading them
 * back to the host. Output pixel p (flat `b·H·W + y·W + x`) takes all its channels from:
 * `source[p] ≥ 0`: the clean pixel `source[p]` of the batch; {@link PLAN_ZERO}: zeros;
 * `source[p] = −2 − k`: the noise values `noise[k·C … k·C + C)`.
 */
export interface CorruptionPlan {
  shape: [number, number, number, number];
  /** `[B·H·W]` int32 per-pixel sources. */
  source: Int32Array;
  /** Noise values (N(0, 1) draws from the Rng), `C` per noise slot. */
  noise: Float32Array;
  /** `[B, H, W]`, 1 = corrupted pixel. */
  pixelMask: PixelMask;
  /** `[B, N]` per-token mask, when the strategy knows a patch size. */
  tokenMask?: TokenMask;
}

/** Apply a plan on the host (the reference that device implementations are tested against). */
export function applyCorruptionPlan(images: ImageBatch, plan: CorruptionPlan): ImageBatch {
  const [B, H, W, C] = plan.shape;
  if (images.shape.some((v, i) => v !== plan.shape[i]))
    throw new Error(
      `images: expected shape [${plan.shape.join(", ")}] (the plan's), got [${images.shape.join(", ")}]`,
    );
  const out = new Float32Array(B * H * W * C);
  const { source, noise } = plan;
  for (let p = 0; p < source.length; p++) {
    const s = source[p];
    if (s >= 0) out.set(images.data.subarray(s * C, (s + 1) * C), p * C);
    else if (s <= -2) out.set(noise.subarray((-2 - s) * C, (-1 - s) * C), p * C);
  }
  return { data: out, shape: [B, H, W, C] };
}

/**
 * Write the sources of one image of a plan, `source[offset … offset + mask.length)`, in one pass
 * over its mask: unmasked pixels keep themselves (`offset + q`); masked ones become
 * {@link PLAN_ZERO} (`zeros`), pixel `first + q` of another image (`partner`: `first` is that
 * image's first pixel), or the noise slots `first`, `first + 1`, … in raster order (`noise`: the
 * order in which `fillMaskedNoise` takes values from the stream). Returns the number of noise
 * slots taken (0 unless `noise`). One tight loop per kind: the plan of a 64×224×224 batch writes
 * 3.2M sources, where a callback per masked run and a second pass to initialise the sources cost
 * several times more.
 */
export function writeImageSources(
  source: Int32Array,
  offset: number,
  mask: Uint8Array,
  kind: "zeros" | "partner" | "noise",
  first = 0,
): number {
  const n = mask.length;
  if (kind === "zeros") {
    for (let q = 0; q < n; q++) source[offset + q] = mask[q] !== 0 ? PLAN_ZERO : offset + q;
    return 0;
  }
  if (kind === "partner") {
    for (let q = 0; q < n; q++) source[offset + q] = mask[q] !== 0 ? first + q : offset + q;
    return 0;
  }
  // Slot k is written as −2 − k (see CorruptionPlan).
  let code = -2 - first;
  for (let q = 0; q < n; q++) source[offset + q] = mask[q] !== 0 ? code-- : offset + q;
  return -2 - first - code;
}

/** Sources of an untouched image: every pixel of `source[offset … offset + count)` keeps itself. */
export function writeIdentitySources(source: Int32Array, offset: number, count: number): void {
  for (let q = 0; q < count; q++) source[offset + q] = offset + q;
}

/**
 * The `shuffle` fill of one block on a source map, with exactly the draws of `shuffleBlock` in
 * fills.ts: the block takes the sources of another block of the image as it is now.
 */
export function shuffleSourceBlock(
  source: Int32Array,
  imageOffset: number,
  height: number,
  width: number,
  geometry: GmmlGeometry,
  block: GmmlBlock,
  rng: Rng,
): void {
  const { align: a } = geometry;
  const sourceRow =
    height - block.height > 0 ? Math.floor(rng.int(0, height - block.height) / a) * a : 0;
  const sourceCol =
    width - block.width > 0 ? Math.floor(rng.int(0, width - block.width) / a) * a : 0;
  block.sourceRow = sourceRow;
  block.sourceCol = sourceCol;
  // Through a scratch copy: source and target may overlap.
  const scratch = new Int32Array(block.height * block.width);
  for (let y = 0; y < block.height; y++) {
    const from = imageOffset + (sourceRow + y) * width + sourceCol;
    scratch.set(source.subarray(from, from + block.width), y * block.width);
  }
  for (let y = 0; y < block.height; y++) {
    const to = imageOffset + (block.row + y) * width + block.col;
    source.set(scratch.subarray(y * block.width, (y + 1) * block.width), to);
  }
}
