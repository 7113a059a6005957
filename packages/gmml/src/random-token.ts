import { type Rng, checkNumber } from "@sit/core";
import type { ImageInput, MaskingBuffers } from "./images";
import type { MaskingResult, MaskingStrategy } from "./strategy";
import { type TokenFill, checkTokenFill, corruptByTokens } from "./token-corruption";

/**
 * MAE's count of masked tokens: `N − floor(N·(1 − ratio))` (MAE keeps `int(N·(1 − ratio))`).
 */
export function randomTokenCount(numTokens: number, ratio: number): number {
  return numTokens - Math.floor(numTokens * (1 - ratio));
}

/**
 * One image's MAE mask: a uniformly random subset of {@link randomTokenCount} of `numTokens` tokens
 * (1 = masked), as MAE's argsort of uniform noise.
 */
export function randomTokenMask(rng: Rng, numTokens: number, ratio = 0.75): Uint8Array {
  checkNumber("numTokens", numTokens, { min: 1, integer: true });
  checkNumber("ratio", ratio, { min: 0, max: 1, minExclusive: true });
  const count = randomTokenCount(numTokens, ratio);
  const order = rng.permutation(numTokens);
  const mask = new Uint8Array(numTokens);
  for (let i = 0; i < count; i++) mask[order[i]] = 1;
  return mask;
}

/** Options of {@link RandomTokenMasker}. */
export interface RandomTokenMaskerOptions {
  /** Share of tokens masked (default 0.75, MAE), in (0, 1]. */
  ratio?: number;
  /** Patch side in pixels (default 16). */
  patchSize?: number;
  /** Fill of masked patches in the corrupted images (default `"zeros"`). */
  fill?: TokenFill;
}

/** Random-token masking (MAE) behind the common {@link MaskingStrategy} interface. */
export class RandomTokenMasker implements MaskingStrategy {
  readonly ratio: number;
  readonly patchSize: number;
  readonly fill: TokenFill;

  constructor(options: RandomTokenMaskerOptions = {}) {
    this.ratio = checkNumber("ratio", options.ratio ?? 0.75, {
      min: 0,
      max: 1,
      minExclusive: true,
    });
    this.patchSize = checkNumber("patchSize", options.patchSize ?? 16, { min: 1, integer: true });
    this.fill = checkTokenFill(options.fill ?? "zeros");
  }

  /** Mask {@link randomTokenCount} random tokens of each image; masked patches are filled. */
  apply(images: ImageInput, rng: Rng, out?: MaskingBuffers): MaskingResult {
    return corruptByTokens(
      images,
      rng,
      this.patchSize,
      this.fill,
      (r, gh, gw) => randomTokenMask(r, gh * gw, this.ratio),
      out,
    );
  }
}
