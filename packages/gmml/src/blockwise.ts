import { ConfigError, type Rng, checkNumber, invalidArgument, roundHalfEven } from "@sit/core";
import type { ImageInput, MaskingBuffers } from "./images";
import type { MaskingResult, MaskingStrategy } from "./strategy";
import { type TokenFill, checkTokenFill, corruptByTokens } from "./token-corruption";

/** Options of {@link blockwiseTokenMask} (BEiT's `MaskingGenerator`); defaults are BEiT's. */
export interface BlockwiseMaskOptions {
  /** Share of tokens to mask (default 0.4; BEiT masks 75 of 196), in (0, 1]. */
  ratio?: number;
  /** Smallest block area in tokens (default 16). */
  minPatches?: number;
  /** Largest block area in tokens (default: the whole target). */
  maxPatches?: number;
  /** Smallest block aspect ratio h/w (default 0.3), in (0, 1]. */
  minAspect?: number;
  /** Largest aspect ratio (default 1/minAspect). */
  maxAspect?: number;
  /**
   * BEiT's loop stops when ten tries in a row add nothing, which can leave the mask short of the
   * target (blocks must be narrower and shorter than the grid). With `exact` (default true) the
   * shortfall is made up with uniformly drawn unmasked tokens so the count is always the target.
   */
  exact?: boolean;
}

interface CheckedBlockwise {
  ratio: number;
  minPatches: number;
  maxPatches: number | undefined;
  logAspect: [number, number];
  exact: boolean;
}

function checkBlockwise(options: BlockwiseMaskOptions): CheckedBlockwise {
  if (typeof options !== "object" || options === null)
    throw invalidArgument("options", options, "an options object");
  const ratio = checkNumber("ratio", options.ratio ?? 0.4, { min: 0, max: 1, minExclusive: true });
  const minPatches = checkNumber("minPatches", options.minPatches ?? 16, { min: 1 });
  const maxPatches =
    options.maxPatches === undefined
      ? undefined
      : checkNumber("maxPatches", options.maxPatches, { min: 1 });
  const minAspect = checkNumber("minAspect", options.minAspect ?? 0.3, {
    min: 0,
    max: 1,
    minExclusive: true,
  });
  const maxAspect = checkNumber("maxAspect", options.maxAspect ?? 1 / minAspect, {
    min: minAspect,
  });
  if (maxPatches !== undefined && maxPatches < minPatches)
    throw new ConfigError(
      `maxPatches: expected at least minPatches (${minPatches}), got ${maxPatches}`,
    );
  const exact = options.exact ?? true;
  if (typeof exact !== "boolean") throw invalidArgument("exact", exact, "a boolean");
  return {
    ratio,
    minPatches,
    maxPatches,
    logAspect: [Math.log(minAspect), Math.log(maxAspect)],
    exact,
  };
}

/** BEiT's target: `round(ratio · N)` tokens. */
export function blockwiseTokenCount(numTokens: number, ratio: number): number {
  return Math.round(ratio * numTokens);
}

// One block as BEiT's `_mask`: up to ten tries of an area in [minPatches, maxAdd] and a
// log-uniform aspect ratio; a try counts when it adds between 1 and maxAdd new tokens.
function addBlock(
  rng: Rng,
  mask: Uint8Array,
  gh: number,
  gw: number,
  maxAdd: number,
  o: CheckedBlockwise,
): number {
  let delta = 0;
  for (let attempt = 0; attempt < 10; attempt++) {
    const area = o.minPatches + (maxAdd - o.minPatches) * rng.float();
    const aspect = Math.exp(o.logAspect[0] + (o.logAspect[1] - o.logAspect[0]) * rng.float());
    const h = roundHalfEven(Math.sqrt(area * aspect));
    const w = roundHalfEven(Math.sqrt(area / aspect));
    if (w < gw && h < gh) {
      const top = rng.int(0, gh - h + 1);
      const left = rng.int(0, gw - w + 1);
      let already = 0;
      for (let y = top; y < top + h; y++)
        for (let x = left; x < left + w; x++) already += mask[y * gw + x];
      const fresh = h * w - already;
      if (fresh > 0 && fresh <= maxAdd) {
        for (let y = top; y < top + h; y++)
          for (let x = left; x < left + w; x++) {
            if (mask[y * gw + x] === 0) {
              mask[y * gw + x] = 1;
              delta++;
            }
          }
      }
      if (delta > 0) break;
    }
  }
  return delta;
}

/**
 * One image's BEiT block-wise mask on a `gridHeight × gridWidth` token grid (1 = masked): rectangles
 * of at least `minPatches` tokens with aspect ratios in [minAspect, maxAspect], never exceeding the
 * target {@link blockwiseTokenCount}, until it is reached.
 */
export function blockwiseTokenMask(
  rng: Rng,
  gridHeight: number,
  gridWidth: number,
  options: BlockwiseMaskOptions = {},
): Uint8Array {
  checkNumber("gridHeight", gridHeight, { min: 1, integer: true });
  checkNumber("gridWidth", gridWidth, { min: 1, integer: true });
  return drawBlockwise(rng, gridHeight, gridWidth, checkBlockwise(options));
}

function drawBlockwise(rng: Rng, gh: number, gw: number, o: CheckedBlockwise): Uint8Array {
  const N = gh * gw;
  const target = blockwiseTokenCount(N, o.ratio);
  const mask = new Uint8Array(N);
  let count = 0;
  while (count < target) {
    const maxAdd = Math.min(target - count, o.maxPatches ?? target);
    const delta = addBlock(rng, mask, gh, gw, maxAdd, o);
    if (delta === 0) break;
    count += delta;
  }
  if (o.exact && count < target) {
    const free: number[] = [];
    for (let i = 0; i < N; i++) if (mask[i] === 0) free.push(i);
    rng.shuffle(free);
    for (let i = 0; count < target; i++, count++) mask[free[i]] = 1;
  }
  return mask;
}

/** Options of {@link BlockwiseMasker}. */
export interface BlockwiseMaskerOptions extends BlockwiseMaskOptions {
  /** Patch side in pixels (default 16). */
  patchSize?: number;
  /** Fill of masked patches in the corrupted images (default `"zeros"`). */
  fill?: TokenFill;
}

/** Block-wise token masking (BEiT) behind the common {@link MaskingStrategy} interface. */
export class BlockwiseMasker implements MaskingStrategy {
  readonly patchSize: number;
  readonly fill: TokenFill;
  private readonly checked: CheckedBlockwise;

  constructor(options: BlockwiseMaskerOptions = {}) {
    this.checked = checkBlockwise(options);
    this.patchSize = checkNumber("patchSize", options.patchSize ?? 16, { min: 1, integer: true });
    this.fill = checkTokenFill(options.fill ?? "zeros");
  }

  /** The masked share of tokens. */
  get ratio(): number {
    return this.checked.ratio;
  }

  /** Mask blocks of tokens in each image; masked patches are filled. */
  apply(images: ImageInput, rng: Rng, out?: MaskingBuffers): MaskingResult {
    return corruptByTokens(
      images,
      rng,
      this.patchSize,
      this.fill,
      (r, gh, gw) => drawBlockwise(r, gh, gw, this.checked),
      out,
    );
  }
}
