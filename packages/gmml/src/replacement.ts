import { ConfigError, type Rng, ShapeError, checkNumber, invalidArgument } from "@sit/core";
import { type GmmlBlock, checkReachable, drawGmmlBlocks, gmmlGeometry } from "./blocks";
import { copyMaskedFrom } from "./fills";
import {
  type ImageBatch,
  type ImageInput,
  type PixelMask,
  checkPixelMask,
  readImageBatch,
} from "./images";

/** Options of {@link replaceFromBatch}; the defaults are SiT v3's. */
export interface BatchReplacementOptions {
  /** Probability per image (default 0.5). */
  replaceProb?: number;
  /** Exact covered fraction of a replacement (default 0.3), in (0, 1]. */
  replaceRatio?: number;
  /** Block grid (default 1). */
  align?: number;
  /** Block sides below floor(maxBlockFraction · side) (default 0.3). */
  maxBlockFraction?: number;
  /** Draw partners among the other images only (default false, as the reference). */
  excludeSelf?: boolean;
}

/** {@link replaceFromBatch}'s result. */
export interface BatchReplacementResult {
  corrupted: ImageBatch;
  pixelMask: PixelMask;
  /** Per image: the partner index when replaced, else -1. */
  partners: Int32Array;
  /** Per image: the replacement's blocks (empty when the image kept its corruption). */
  blocks: GmmlBlock[][];
}

/**
 * The batch-level step of SiT (§3.3, `GMML_replace_list`) on its own, for views corrupted
 * elsewhere: for each image i, draw a partner j uniformly in [0, B) (j may equal i unless
 * `excludeSelf`) and, with probability `replaceProb`, discard i's corruption, start again from its
 * clean image, draw blocks covering `replaceRatio` of it and paste the partner's clean pixels at the
 * same positions; the new mask replaces the old one. Otherwise the given corruption and mask are
 * kept. Returns fresh arrays.
 */
export function replaceFromBatch(
  clean: ImageInput,
  previous: { corrupted: ImageInput; pixelMask: PixelMask },
  rng: Rng,
  options: BatchReplacementOptions = {},
): BatchReplacementResult {
  const cleanBatch = readImageBatch("clean", clean);
  if (typeof previous !== "object" || previous === null)
    throw invalidArgument("previous", previous, "{ corrupted, pixelMask }");
  const prev = readImageBatch("previous.corrupted", previous.corrupted);
  const [B, H, W, C] = cleanBatch.shape;
  if (prev.shape.some((v, i) => v !== cleanBatch.shape[i]))
    throw new ShapeError(
      `previous.corrupted: expected shape [${cleanBatch.shape.join(", ")}] (as clean), got [${prev.shape.join(", ")}]`,
    );
  checkPixelMask("previous.pixelMask", previous.pixelMask, [B, H, W]);
  const replaceProb = checkNumber("replaceProb", options.replaceProb ?? 0.5, { min: 0, max: 1 });
  const replaceRatio = options.replaceRatio ?? 0.3;
  const geometry = gmmlGeometry(H, W, {
    ratio: replaceRatio,
    align: options.align ?? 1,
    maxBlockFraction: options.maxBlockFraction ?? 0.3,
  });
  if (replaceProb > 0) checkReachable(geometry, replaceRatio, "replaceRatio", replaceRatio);
  const excludeSelf = options.excludeSelf ?? false;
  if (typeof excludeSelf !== "boolean")
    throw invalidArgument("excludeSelf", excludeSelf, "a boolean");
  if (excludeSelf && replaceProb > 0 && B < 2)
    throw new ConfigError(
      `clean: a replacement with excludeSelf needs at least 2 images to take a partner from, got a batch of ${B}`,
    );
  if (rng === null || typeof rng !== "object" || typeof (rng as Rng).int !== "function")
    throw invalidArgument("rng", rng, "an Rng from @sit/core");

  const corrupted = new Float32Array(prev.data);
  const pixelMask = new Uint8Array(previous.pixelMask.data);
  const partners = new Int32Array(B).fill(-1);
  const blocks: GmmlBlock[][] = [];
  const imageSize = H * W * C;
  for (let i = 0; i < B; i++) {
    blocks.push([]);
    if (replaceProb === 0) continue;
    let j = rng.int(0, excludeSelf ? B - 1 : B);
    if (excludeSelf && j >= i) j++;
    if (!rng.bernoulli(replaceProb)) continue;
    const offset = i * imageSize;
    corrupted.set(cleanBatch.data.subarray(offset, offset + imageSize), offset);
    const mask = pixelMask.subarray(i * H * W, (i + 1) * H * W);
    mask.fill(0);
    const draw = drawGmmlBlocks(rng, geometry, replaceRatio, mask);
    copyMaskedFrom(
      { data: corrupted, offset, height: H, width: W, channels: C },
      cleanBatch.data,
      j * imageSize,
      mask,
      0,
    );
    partners[i] = j;
    blocks[i] = draw.blocks;
  }
  return {
    corrupted: { data: corrupted, shape: [B, H, W, C] },
    pixelMask: { data: pixelMask, shape: [B, H, W] },
    partners,
    blocks,
  };
}
