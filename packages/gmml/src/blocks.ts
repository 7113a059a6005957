import { ConfigError, type Rng, checkNumber, roundHalfEven } from "@sit/core";

/** Geometry of GMML block drawing (§3.1 of the SiT reference). */
export interface GmmlBlockOptions {
  /**
   * `max_replace` r in (0, 1]: the covered fraction is drawn in [min(0.5, r), r] per image
   * (r ≤ 0.5 gives exactly r·H·W pixels, up to one block of overshoot).
   */
  ratio: number;
  /** Block corners and sides are multiples of `align` (1 = pixel groups; the patch size = token-aligned groups). */
  align: number;
  /** Block sides are drawn below `floor(maxBlockFraction · side)` (0.3 in the reference), in (0, 1]. */
  maxBlockFraction: number;
}

/** One drawn rectangle, clipped to the image; `sourceRow/sourceCol` only for the `shuffle` fill. */
export interface GmmlBlock {
  row: number;
  col: number;
  height: number;
  width: number;
  sourceRow?: number;
  sourceCol?: number;
}

/** What one call of {@link drawGmmlBlocks} drew. */
export interface GmmlBlockDraw {
  /** Pixel count the loop had to reach (`n` of the reference, not rounded). */
  target: number;
  /** Pixels covered when the loop stopped (≥ target). */
  covered: number;
  blocks: GmmlBlock[];
}

/** Derived limits for one image size, from {@link gmmlGeometry}. */
export interface GmmlGeometry {
  height: number;
  width: number;
  align: number;
  /** floor(maxBlockFraction·H): drawn heights lie in [align, maxBlockHeight) before rounding to `align`. */
  maxBlockHeight: number;
  maxBlockWidth: number;
  /** Pixels that any block can reach (the loop could never end above this). */
  coverable: number;
}

/** Check the options shared by every GMML entry point; returns them with `align` normalised. */
export function checkGmmlBlockOptions(prefix: string, options: GmmlBlockOptions): GmmlBlockOptions {
  checkNumber(`${prefix}ratio`, options.ratio, { min: 0, max: 1, minExclusive: true });
  checkNumber(`${prefix}maxBlockFraction`, options.maxBlockFraction, {
    min: 0,
    max: 1,
    minExclusive: true,
  });
  checkNumber(`${prefix}align`, options.align, { min: 1, integer: true });
  return options;
}

// Rows (or columns) that some block can reach: a row0 of the reference's grid plus the largest
// side it can get there. With an image side that is not a multiple of `align`, or a block limit of
// 2 px, the last rows can be unreachable; the reference loops forever when the target needs them.
function coverableAlong(size: number, align: number, maxBlock: number): number {
  const reach = new Uint8Array(size);
  for (let r0 = 0; r0 <= size - align - 1; r0 += align) {
    const side = roundHalfEven(Math.min(maxBlock - 1, size - r0) / align) * align;
    reach.fill(1, r0, Math.min(size, r0 + side));
  }
  let n = 0;
  for (let i = 0; i < size; i++) n += reach[i];
  return n;
}

/**
 * Validate an image size against the block options and derive the block limits. Throws a
 * ConfigError when `align` is not smaller than the image or not smaller than the block limit
 * (the reference's `randint(align, floor(0.3·H))` would be empty there).
 */
export function gmmlGeometry(
  height: number,
  width: number,
  options: GmmlBlockOptions,
  prefix = "",
): GmmlGeometry {
  const { align, maxBlockFraction } = checkGmmlBlockOptions(prefix, options);
  if (align >= height || align >= width)
    throw new ConfigError(
      `${prefix}align: expected an integer smaller than the image (${height}×${width}), got ${align}`,
    );
  const maxBlockHeight = Math.floor(maxBlockFraction * height);
  const maxBlockWidth = Math.floor(maxBlockFraction * width);
  if (align >= maxBlockHeight || align >= maxBlockWidth)
    throw new ConfigError(
      `${prefix}align: expected an integer smaller than the block limit floor(maxBlockFraction·side) = ` +
        `${Math.min(maxBlockHeight, maxBlockWidth)} for a ${height}×${width} image with maxBlockFraction ` +
        `${maxBlockFraction}, got ${align} (lower align or raise maxBlockFraction)`,
    );
  const coverable =
    coverableAlong(height, align, maxBlockHeight) * coverableAlong(width, align, maxBlockWidth);
  return { height, width, align, maxBlockHeight, maxBlockWidth, coverable };
}

/**
 * Throw a ConfigError when a covered fraction `fraction` is more than blocks can ever reach on this
 * geometry (the reference would loop forever). `name`/`value` describe the option responsible.
 */
export function checkReachable(
  geometry: GmmlGeometry,
  fraction: number,
  name: string,
  value: number,
): void {
  const { height: H, width: W } = geometry;
  if (fraction * H * W > geometry.coverable)
    throw new ConfigError(
      `${name}: expected at most ${(geometry.coverable / (H * W)).toFixed(4)} for a ${H}×${W} image with ` +
        `align ${geometry.align} (only ${geometry.coverable} pixels can be reached by a block), got ${value}`,
    );
}

/**
 * Draw GMML blocks on one image (§3.1): target `n = U(min(0.5, r), r)·H·W`; then, until at least
 * `n` pixels are covered, a rectangle at row0 = floor(randint[0, H−a)/a)·a (col0 likewise) with
 * height min(randint[a, maxBh), H − row0) rounded half-to-even to a multiple of `a` (width
 * likewise), clipped to the image. Blocks may overlap. Sets `mask[y·W + x] = 1` on covered pixels
 * (`mask` must start at 0 for the coverage count to be right). `onBlock` runs after each block's
 * four draws and before the next, with the same `rng`, so fills that draw more numbers per block
 * (the `shuffle` source) keep the reference's order.
 */
export function drawGmmlBlocks(
  rng: Rng,
  geometry: GmmlGeometry,
  ratio: number,
  mask: Uint8Array,
  onBlock?: (block: GmmlBlock) => void,
): GmmlBlockDraw {
  const { height: H, width: W, align: a, maxBlockHeight, maxBlockWidth } = geometry;
  checkNumber("ratio", ratio, { min: 0, max: 1, minExclusive: true });
  const low = Math.min(0.5, ratio);
  const target = (low === ratio ? ratio : rng.uniform(low, ratio)) * H * W;
  checkReachable(geometry, target / (H * W), "ratio", ratio);
  const blocks: GmmlBlock[] = [];
  let covered = 0;
  while (covered < target) {
    const row = Math.floor(rng.int(0, H - a) / a) * a;
    const col = Math.floor(rng.int(0, W - a) / a) * a;
    const h = roundHalfEven(Math.min(rng.int(a, maxBlockHeight), H - row) / a) * a;
    const w = roundHalfEven(Math.min(rng.int(a, maxBlockWidth), W - col) / a) * a;
    // Rounding up can pass the image edge; the reference's slices clip there.
    const block: GmmlBlock = {
      row,
      col,
      height: Math.min(h, H - row),
      width: Math.min(w, W - col),
    };
    for (let y = row; y < row + block.height; y++) {
      const start = y * W + col;
      const end = start + block.width;
      for (let p = start; p < end; p++) {
        if (mask[p] === 0) {
          mask[p] = 1;
          covered++;
        }
      }
    }
    blocks.push(block);
    onBlock?.(block);
  }
  return { target, covered, blocks };
}
