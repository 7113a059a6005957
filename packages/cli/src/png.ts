import { ConfigError } from "@sit/core";
import { encodePng, writeFileAtomic } from "@sit/core/node";
import type { NormalizeStats } from "@sit/data";

/** One picture of a grid: RGB values in [0, 1], row-major `[h, w, 3]`. */
export interface RgbImage {
  data: Float32Array;
  height: number;
  width: number;
}

/**
 * Images `[B, H, W, C]` (C = 1 or 3) in normalised units back to viewable RGB in [0, 1]:
 * `x · std + mean`, clamped; grey images are repeated on the three channels.
 */
export function toRgbImages(
  data: Float32Array,
  shape: readonly [number, number, number, number],
  stats: NormalizeStats | null,
): RgbImage[] {
  const [B, H, W, C] = shape;
  if (C !== 1 && C !== 3)
    throw new ConfigError(`images: expected 1 or 3 channels, got shape [${shape.join(", ")}]`);
  const meanOf = (c: number) =>
    stats ? (stats.mean.length === 1 ? stats.mean[0] : stats.mean[c]) : 0;
  const stdOf = (c: number) => (stats ? (stats.std.length === 1 ? stats.std[0] : stats.std[c]) : 1);
  const out: RgbImage[] = [];
  for (let b = 0; b < B; b++) {
    const img = new Float32Array(H * W * 3);
    for (let p = 0; p < H * W; p++)
      for (let c = 0; c < 3; c++) {
        const src = C === 1 ? 0 : c;
        const v = data[(b * H * W + p) * C + src] * stdOf(src) + meanOf(src);
        img[p * 3 + c] = v < 0 ? 0 : v > 1 ? 1 : Number.isNaN(v) ? 0 : v;
      }
    out.push({ data: img, height: H, width: W });
  }
  return out;
}

// A perceptually ordered dark-to-bright map (black → purple → orange → pale yellow), as "inferno".
const HEAT_STOPS: [number, number, number, number][] = [
  [0.0, 0.0, 0.0, 0.02],
  [0.25, 0.34, 0.06, 0.43],
  [0.5, 0.73, 0.21, 0.33],
  [0.75, 0.98, 0.55, 0.04],
  [1.0, 0.99, 1.0, 0.64],
];

/** A value in [0, 1] through the heat colour map. */
export function heatColor(v: number): [number, number, number] {
  const x = v < 0 ? 0 : v > 1 ? 1 : Number.isNaN(v) ? 0 : v;
  for (let i = 1; i < HEAT_STOPS.length; i++) {
    const [x1, r1, g1, b1] = HEAT_STOPS[i];
    if (x <= x1) {
      const [x0, r0, g0, b0] = HEAT_STOPS[i - 1];
      const t = (x - x0) / (x1 - x0);
      return [r0 + t * (r1 - r0), g0 + t * (g1 - g0), b0 + t * (b1 - b0)];
    }
  }
  return [HEAT_STOPS[4][1], HEAT_STOPS[4][2], HEAT_STOPS[4][3]];
}

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
