import { ConfigError } from "@sit/core";
import { encodePng, writeFileAtomic } from "@sit/core/node";
import { type RgbImage, heatColor } from "@sit/eval";

/**
 * A heat map of a `[gh, gw]` grid of values, min–max scaled to [0, 1] and enlarged (nearest) to
 * `height × width` (each grid cell becomes a block, e.g. one patch).
 */
export function heatMap(
  values: ArrayLike<number>,
  gh: number,
  gw: number,
  height: number,
  width: number,
): RgbImage {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < gh * gw; i++) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  const range = hi > lo ? hi - lo : 1;
  const data = new Float32Array(height * width * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const gy = Math.min(gh - 1, Math.floor((y * gh) / height));
      const gx = Math.min(gw - 1, Math.floor((x * gw) / width));
      const [r, g, b] = heatColor((values[gy * gw + gx] - lo) / range);
      const o = (y * width + x) * 3;
      data[o] = r;
      data[o + 1] = g;
      data[o + 2] = b;
    }
  return { data, height, width };
}

/** Options of {@link renderGrid}. */
export interface GridOptions {
  /** Integer enlargement of every cell (default: enough for cells ≥ 96 px). */
  scale?: number;
  /** Pixels between cells (default 2, grey). */
  padding?: number;
}

/** Encode rows of equally sized pictures as one PNG (grey frame between cells). */
export function renderGrid(rows: RgbImage[][], options: GridOptions = {}): Buffer {
  if (rows.length === 0 || rows[0].length === 0)
    throw new ConfigError("rows: expected at least one row with one picture, got none");
  const { height: H, width: W } = rows[0][0];
  const cols = Math.max(...rows.map((r) => r.length));
  for (const r of rows)
    for (const img of r)
      if (img.height !== H || img.width !== W)
        throw new ConfigError(
          `rows: expected pictures of ${H}×${W}, got ${img.height}×${img.width}`,
        );
  const scale = options.scale ?? Math.max(1, Math.ceil(96 / H));
  const pad = options.padding ?? 2;
  const cw = W * scale;
  const ch = H * scale;
  const width = cols * cw + (cols + 1) * pad;
  const height = rows.length * ch + (rows.length + 1) * pad;
  const rgb = new Uint8Array(width * height * 3).fill(128);
  const stride = width * 3;
  rows.forEach((row, r) => {
    row.forEach((img, c) => {
      const top = pad + r * (ch + pad);
      const left = pad + c * (cw + pad);
      for (let y = 0; y < ch; y++) {
        const sy = Math.floor(y / scale);
        for (let x = 0; x < cw; x++) {
          const s = (sy * W + Math.floor(x / scale)) * 3;
          const o = (top + y) * stride + (left + x) * 3;
          rgb[o] = Math.round(img.data[s] * 255);
          rgb[o + 1] = Math.round(img.data[s + 1] * 255);
          rgb[o + 2] = Math.round(img.data[s + 2] * 255);
        }
      }
    });
  });
  return Buffer.from(encodePng(rgb, width, height, 3));
}

/** {@link renderGrid} written atomically to `path`. */
export function writeGrid(path: string, rows: RgbImage[][], options: GridOptions = {}): void {
  writeFileAtomic(path, renderGrid(rows, options));
}
