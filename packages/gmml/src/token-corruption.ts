import { type Rng, invalidArgument } from "@sit/core";
import { fillMaskedConstant, fillMaskedNoise } from "./fills";
import { type ImageInput, type MaskingBuffers, outputArrays, readImageBatch } from "./images";
import { NormalStream } from "./normal-stream";
import type { MaskingResult } from "./strategy";
import { patchGrid, tokenMaskFromBooleans, tokenToPixelMask } from "./token-mask";

/** How token-level strategies fill masked patches: `zeros` (the mean colour) or N(0, 1) `noise`. */
export type TokenFill = "zeros" | "noise";

/** Check a {@link TokenFill} option. */
export function checkTokenFill(fill: unknown): TokenFill {
  if (fill !== "zeros" && fill !== "noise")
    throw invalidArgument("fill", fill, '"zeros" or "noise"');
  return fill;
}

/**
 * Shared body of the token strategies: draw one token mask per image with `drawImageMask(rng, gh, gw)`,
 * expand it to pixels and fill the masked patches.
 */
export function corruptByTokens(
  images: ImageInput,
  rng: Rng,
  patchSize: number,
  fill: TokenFill,
  drawImageMask: (rng: Rng, gridHeight: number, gridWidth: number) => Uint8Array,
  out?: MaskingBuffers,
): MaskingResult {
  const clean = readImageBatch("images", images);
  if (rng === null || typeof rng !== "object" || typeof (rng as Rng).int !== "function")
    throw invalidArgument("rng", rng, "an Rng from @sit/core");
  const [B, H, W, C] = clean.shape;
  const grid = patchGrid(H, W, patchSize);
  const N = grid[0] * grid[1];
  const tokens = new Uint8Array(B * N);
  for (let b = 0; b < B; b++) tokens.set(drawImageMask(rng, grid[0], grid[1]), b * N);
  const buffers = outputArrays(out, clean.data, B * H * W);
  const pixelMask = tokenToPixelMask(tokens, grid, patchSize, buffers.pixelMask);
  const corrupted = buffers.corrupted;
  corrupted.set(clean.data);
  const normals = fill === "noise" ? new NormalStream(rng) : undefined;
  for (let b = 0; b < B; b++) {
    const view = { data: corrupted, offset: b * H * W * C, height: H, width: W, channels: C };
    if (normals) fillMaskedNoise(view, pixelMask.data, b * H * W, normals);
    else fillMaskedConstant(view, pixelMask.data, b * H * W, 0);
  }
  return {
    corrupted: { data: corrupted, shape: [B, H, W, C] },
    pixelMask,
    tokenMask: tokenMaskFromBooleans(tokens, B, grid, patchSize),
  };
}
