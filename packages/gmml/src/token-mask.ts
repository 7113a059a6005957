import { ConfigError, ShapeError, checkNumber, describeValue, invalidArgument } from "@sit/core";
import { type PixelMask, checkPixelMask } from "./images";

/**
 * A per-token mask `[B, N]` over the `gridHeight × gridWidth` patch grid (row-major, the ViT's token
 * order): `fraction` is the share of each patch's pixels that is corrupted, `mask` is 1 where that
 * share reaches `threshold`.
 */
export interface TokenMask {
  fraction: Float32Array;
  mask: Uint8Array;
  shape: [number, number];
  grid: [number, number];
  patchSize: number;
  threshold: number;
}

/** Options of {@link pixelToTokenMask}. */
export interface PixelToTokenOptions {
  /** A token counts as masked when at least this fraction of its pixels is (default 0.5), in (0, 1]. */
  threshold?: number;
}

function checkPatchGrid(
  height: number,
  width: number,
  patchSize: number,
  name: string,
): [number, number] {
  checkNumber(name, patchSize, { min: 1, integer: true });
  if (height % patchSize !== 0 || width % patchSize !== 0)
    throw new ShapeError(
      `${name}: expected a divisor of the image size ${height}×${width}, got ${patchSize}`,
    );
  return [height / patchSize, width / patchSize];
}

/**
 * Pool a pixel mask `[B, H, W]` into a token mask for square patches of `patchSize`: each token's
 * fraction of masked pixels, and the boolean `fraction ≥ threshold`. With GMML blocks aligned to the
 * patch size, every fraction is exactly 0 or 1.
 */
export function pixelToTokenMask(
  pixelMask: PixelMask,
  patchSize: number,
  options: PixelToTokenOptions = {},
): TokenMask {
  const threshold = options.threshold ?? 0.5;
  checkNumber("threshold", threshold, { min: 0, max: 1, minExclusive: true });
  if (typeof pixelMask !== "object" || pixelMask === null || !Array.isArray(pixelMask.shape))
    throw invalidArgument("pixelMask", pixelMask, "{ data: Uint8Array, shape: [B, H, W] }");
  const [B, H, W] = pixelMask.shape;
  checkPixelMask("pixelMask", pixelMask, [B, H, W]);
  const [gh, gw] = checkPatchGrid(H, W, patchSize, "patchSize");
  const counts = maskedPerToken(pixelMask.data, B, H, W, patchSize);
  const area = patchSize * patchSize;
  const fraction = new Float32Array(counts.length);
  const mask = new Uint8Array(counts.length);
  for (let i = 0; i < counts.length; i++) {
    fraction[i] = counts[i] / area;
    // Compare counts, not rounded fractions, so that e.g. 0.5 of an odd-sized patch is exact.
    mask[i] = counts[i] >= threshold * area ? 1 : 0;
  }
  return { fraction, mask, shape: [B, gh * gw], grid: [gh, gw], patchSize, threshold };
}

/**
 * Count the nonzero pixels of every patch of a `[B, H, W]` mask (patches row-major per image).
 * Token masks are drawn for every training step (two views of 64×224×224 on the GPU path), so
 * where the rows and patches fall on 4-byte boundaries this counts four pixels per 32-bit load:
 * each byte folded onto its low bit (1 when the byte is nonzero), the four bits summed by one
 * multiply. Elsewhere it counts pixel by pixel. Both give the same counts.
 */
function maskedPerToken(
  m: Uint8Array,
  B: number,
  H: number,
  W: number,
  patchSize: number,
): Uint32Array {
  const gw = W / patchSize;
  const N = (H / patchSize) * gw;
  const counts = new Uint32Array(B * N);
  const byWord = m.byteOffset % 4 === 0 && W % 4 === 0 && patchSize % 4 === 0;
  const words = byWord ? new Uint32Array(m.buffer, m.byteOffset, m.length >> 2) : null;
  // In words when byWord, in bytes otherwise.
  const unit = byWord ? 4 : 1;
  const rowLength = W / unit;
  const patchLength = patchSize / unit;
  for (let b = 0; b < B; b++) {
    for (let y = 0; y < H; y++) {
      const row = (b * H + y) * rowLength;
      const tokenRow = b * N + Math.floor(y / patchSize) * gw;
      for (let t = 0; t < gw; t++) {
        const start = row + t * patchLength;
        const end = start + patchLength;
        let n = 0;
        if (words) {
          for (let i = start; i < end; i++) {
            let x = words[i];
            x |= x >>> 4;
            x |= x >>> 2;
            x |= x >>> 1;
            n += Math.imul(x & 0x01010101, 0x01010101) >>> 24;
          }
        } else for (let i = start; i < end; i++) n += m[i] !== 0 ? 1 : 0;
        counts[tokenRow + t] += n;
      }
    }
  }
  return counts;
}

/**
 * Expand a token mask (0/1 per token, `[B, gridHeight·gridWidth]` row-major) into a pixel mask
 * `[B, gridHeight·patchSize, gridWidth·patchSize]`, written into `out` when given.
 */
export function tokenToPixelMask(
  tokenMask: Uint8Array,
  grid: readonly [number, number],
  patchSize: number,
  out?: Uint8Array,
): PixelMask {
  if (!(tokenMask instanceof Uint8Array))
    throw invalidArgument("tokenMask", tokenMask, "a Uint8Array of 0/1 per token");
  if (!Array.isArray(grid) || grid.length !== 2 || !grid.every((v) => Number.isInteger(v) && v > 0))
    throw new ConfigError(
      `grid: expected [gridHeight, gridWidth] of positive integers, got ${describeValue(grid)}`,
    );
  checkNumber("patchSize", patchSize, { min: 1, integer: true });
  const [gh, gw] = grid;
  const N = gh * gw;
  if (tokenMask.length === 0 || tokenMask.length % N !== 0)
    throw new ShapeError(
      `tokenMask: expected a multiple of ${N} (= ${gh}×${gw}) values, got ${tokenMask.length}`,
    );
  const B = tokenMask.length / N;
  const H = gh * patchSize;
  const W = gw * patchSize;
  if (out !== undefined && (!(out instanceof Uint8Array) || out.length !== B * H * W))
    throw invalidArgument("out", out, `a Uint8Array of ${B * H * W} values`);
  const pixels = out ?? new Uint8Array(B * H * W);
  if (out) pixels.fill(0);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < N; t++) {
      if (tokenMask[b * N + t] === 0) continue;
      const y0 = Math.floor(t / gw) * patchSize;
      const x0 = (t % gw) * patchSize;
      for (let y = y0; y < y0 + patchSize; y++) {
        const start = (b * H + y) * W + x0;
        pixels.fill(1, start, start + patchSize);
      }
    }
  }
  return { data: pixels, shape: [B, H, W] };
}

/** A token mask built from 0/1 tokens (fraction = mask), for strategies that mask whole tokens. */
export function tokenMaskFromBooleans(
  mask: Uint8Array,
  batchSize: number,
  grid: [number, number],
  patchSize: number,
): TokenMask {
  const fraction = Float32Array.from(mask);
  return {
    fraction,
    mask,
    shape: [batchSize, grid[0] * grid[1]],
    grid,
    patchSize,
    threshold: 0.5,
  };
}

/** The patch grid of an image size, with a clear error when `patchSize` does not divide it. */
export function patchGrid(height: number, width: number, patchSize: number): [number, number] {
  return checkPatchGrid(height, width, patchSize, "patchSize");
}
