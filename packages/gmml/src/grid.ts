import { ConfigError, ShapeError, checkNumber, describeValue } from "@sit/core";
import { type ImageInput, type PixelMask, checkPixelMask, readImageBatch } from "./images";

/** ImageNet statistics, the normalisation SiT uses. */
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

/** Options of {@link drawGmmlGrid} (and of `renderGmmlGrid`/`writeGmmlGrid` in `@sit/gmml/node`). */
export interface GmmlGridOptions {
  /** Per-channel mean used to normalise the images (default ImageNet's; one value for grey images). */
  mean?: number | readonly number[];
  /** Per-channel std used to normalise the images (default ImageNet's). */
  std?: number | readonly number[];
  /** At most this many rows (images) are drawn (default 16). */
  maxImages?: number;
  /** Integer upscaling of every cell (default: enough to make cells at least 96 px tall). */
  scale?: number;
  /** Pixels between cells (default 2). */
  padding?: number;
}

function perChannel(name: string, value: number | readonly number[], channels: number): number[] {
  const list = typeof value === "number" ? new Array(channels).fill(value) : [...value];
  if (list.length === 1 && channels > 1) return new Array(channels).fill(list[0]);
  if (list.length !== channels || !list.every((v) => typeof v === "number" && Number.isFinite(v)))
    throw new ConfigError(
      `${name}: expected a number or ${channels} finite numbers (one per channel), got ${describeValue(value)}`,
    );
  return list;
}

/** A picture as 8-bit RGB pixels, row-major, 3 bytes per pixel. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * Draw a grid that shows what GMML did: one row per image, columns *original | mask |
 * corrupted*. Images are NHWC in normalised units (1 or 3 channels) and are un-normalised with
 * `mean`/`std` for viewing (values clamped to [0, 1]); the mask is white where pixels are corrupted.
 * Returns RGB pixels (a page puts them on a canvas; `@sit/gmml/node` encodes them as PNG).
 */
export function drawGmmlGrid(
  images: ImageInput,
  mask: PixelMask,
  corrupted: ImageInput,
  options: GmmlGridOptions = {},
): RgbImage {
  const clean = readImageBatch("images", images);
  const bad = readImageBatch("corrupted", corrupted);
  const [B, H, W, C] = clean.shape;
  if (bad.shape.some((v, i) => v !== clean.shape[i]))
    throw new ShapeError(
      `corrupted: expected shape [${clean.shape.join(", ")}] (as images), got [${bad.shape.join(", ")}]`,
    );
  if (C !== 1 && C !== 3)
    throw new ShapeError(`images: expected 1 or 3 channels, got shape [${clean.shape.join(", ")}]`);
  checkPixelMask("mask", mask, [B, H, W]);
  const mean = perChannel("mean", options.mean ?? (C === 3 ? IMAGENET_MEAN : 0), C);
  const std = perChannel("std", options.std ?? (C === 3 ? IMAGENET_STD : 1), C);
  if (std.some((s) => s === 0))
    throw new ConfigError(`std: expected non-zero values, got ${describeValue(std)}`);
  const rows = Math.min(
    B,
    checkNumber("maxImages", options.maxImages ?? 16, { min: 1, integer: true }),
  );
  const scale = checkNumber("scale", options.scale ?? Math.max(1, Math.ceil(96 / H)), {
    min: 1,
    max: 64,
    integer: true,
  });
  const pad = checkNumber("padding", options.padding ?? 2, { min: 0, max: 64, integer: true });
  const cellW = W * scale;
  const cellH = H * scale;
  const width = 3 * cellW + 4 * pad;
  const height = rows * cellH + (rows + 1) * pad;
  const out = new Uint8Array(width * height * 3);
  out.fill(128); // grey frame: distinct from a white mask and from black pixels
  const stride = width * 3;

  const toByte = (v: number): number => {
    const x = Math.round(v * 255);
    return x < 0 ? 0 : x > 255 ? 255 : Number.isNaN(x) ? 0 : x;
  };
  for (let b = 0; b < rows; b++) {
    const top = pad + b * (cellH + pad);
    for (let y = 0; y < cellH; y++) {
      const sy = Math.floor(y / scale);
      for (let x = 0; x < cellW; x++) {
        const sx = Math.floor(x / scale);
        const pixel = (b * H + sy) * W + sx;
        const rgb = (src: Float32Array): number[] => {
          const base = pixel * C;
          if (C === 1) {
            const g = toByte(src[base] * std[0] + mean[0]);
            return [g, g, g];
          }
          return [0, 1, 2].map((c) => toByte(src[base + c] * std[c] + mean[c]));
        };
        const m = mask.data[pixel] !== 0 ? 255 : 0;
        const cells: number[][] = [rgb(clean.data), [m, m, m], rgb(bad.data)];
        for (let k = 0; k < 3; k++) {
          const o = (top + y) * stride + (pad + k * (cellW + pad) + x) * 3;
          out[o] = cells[k][0];
          out[o + 1] = cells[k][1];
          out[o + 2] = cells[k][2];
        }
      }
    }
  }
  return { width, height, data: out };
}
