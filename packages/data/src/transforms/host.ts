import { ShapeError } from "@sit/core";
import { blurKernelSize, gaussianKernel1d } from "./blur";
import type { NormalizeStats } from "./normalize";
import { type Interpolation, type SampleRegion, axisTaps, tapsOf } from "./resample";

/**
 * An NHWC float32 batch in plain JS memory: the "host" execution path of the image operations.
 * On the cpu and wasm backends, tfjs runs per-pixel image work 10–100× slower than direct loops
 * (measured in tools/bench/data.ts), so the transforms run these loops there and hand one tensor
 * to tfjs at the end. Every function mirrors the tensor operation of the same name (same
 * torchvision semantics, same parity tests) and modifies images in place unless it says otherwise.
 */
export interface HostImages {
  data: Float32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
}

const LUMA = [0.2989, 0.587, 0.114];

const clamp01 = (v: number) => Math.min(Math.max(v, 0), 1);

function imageSize(x: HostImages): number {
  return x.height * x.width * x.channels;
}

/** Resample regions of a (padded) batch, as `resampleRegions`; returns a new batch. */
export function hostResample(
  x: HostImages,
  regions: readonly SampleRegion[],
  outHeight: number,
  outWidth: number,
  mode: Interpolation,
): HostImages {
  const { height, width, channels: C } = x;
  const n = regions.length;
  if (n !== x.n) throw new ShapeError(`regions: expected ${x.n} regions (one per image), got ${n}`);
  const taps = tapsOf(mode);
  const iy = new Int32Array(outHeight * taps);
  const wy = new Float32Array(outHeight * taps);
  const ix = new Int32Array(outWidth * taps);
  const wx = new Float32Array(outWidth * taps);
  const out = new Float32Array(n * outHeight * outWidth * C);
  const rowLen = width * C;
  const rows = new Float64Array(outHeight * rowLen);
  const clampOutput = mode === "bicubic";
  for (let b = 0; b < n; b++) {
    const r = regions[b];
    if (r.top < 0 || r.left < 0 || r.top + r.height > height || r.left + r.width > width)
      throw new ShapeError(
        `regions[${b}]: expected a region inside the ${height}×${width} image, got ${JSON.stringify(r)}`,
      );
    axisTaps(
      mode,
      r.top,
      r.height,
      r.resizedHeight ?? outHeight,
      r.offsetY ?? 0,
      outHeight,
      iy,
      wy,
      0,
    );
    axisTaps(
      mode,
      r.left,
      r.width,
      r.resizedWidth ?? outWidth,
      r.offsetX ?? 0,
      outWidth,
      ix,
      wx,
      0,
    );
    const src = b * height * rowLen;
    // Rows pass over the region's columns only: contiguous runs of `span` values per tap.
    const j0 = r.left * C;
    const j1 = (r.left + r.width) * C;
    rows.fill(0);
    for (let s = 0; s < outHeight; s++) {
      const dstRow = s * rowLen;
      for (let t = 0; t < taps; t++) {
        const w = wy[s * taps + t];
        if (w === 0) continue;
        const srcRow = src + iy[s * taps + t] * rowLen;
        for (let j = j0; j < j1; j++) rows[dstRow + j] += w * x.data[srcRow + j];
      }
    }
    // Columns pass.
    let o = b * outHeight * outWidth * C;
    for (let s = 0; s < outHeight; s++) {
      const row = s * rowLen;
      for (let s2 = 0; s2 < outWidth; s2++) {
        for (let c = 0; c < C; c++) {
          let acc = 0;
          for (let t = 0; t < taps; t++)
            acc += wx[s2 * taps + t] * rows[row + ix[s2 * taps + t] * C + c];
          out[o++] = clampOutput ? clamp01(acc) : acc;
        }
      }
    }
  }
  return { data: out, n, height: outHeight, width: outWidth, channels: C };
}

/** Mirror image `i` left–right. */
export function hostFlip(x: HostImages, i: number): void {
  const { height, width, channels: C } = x;
  const base = i * imageSize(x);
  for (let y = 0; y < height; y++) {
    const row = base + y * width * C;
    for (let a = 0, b = width - 1; a < b; a++, b--)
      for (let c = 0; c < C; c++) {
        const t = x.data[row + a * C + c];
        x.data[row + a * C + c] = x.data[row + b * C + c];
        x.data[row + b * C + c] = t;
      }
  }
}

/** Luma of pixel `p` (offset of its first channel). */
function luma(d: Float32Array, p: number, C: number): number {
  return C === 1 ? d[p] : Math.fround(LUMA[0] * d[p] + LUMA[1] * d[p + 1] + LUMA[2] * d[p + 2]);
}

/** Brightness of image `i`: clamp(f·x). */
export function hostBrightness(x: HostImages, i: number, f: number): void {
  const size = imageSize(x);
  const d = x.data;
  for (let k = i * size; k < (i + 1) * size; k++) d[k] = clamp01(f * d[k]);
}

/** Contrast of image `i`: blend with its mean luma. */
export function hostContrast(x: HostImages, i: number, f: number): void {
  const C = x.channels;
  const size = imageSize(x);
  const d = x.data;
  let sum = 0;
  for (let p = i * size; p < (i + 1) * size; p += C) sum += luma(d, p, C);
  const mean = Math.fround(sum / (x.height * x.width));
  const g = (1 - f) * mean;
  for (let k = i * size; k < (i + 1) * size; k++) d[k] = clamp01(f * d[k] + g);
}

/** Saturation of image `i`: blend each pixel with its luma (no-op on 1 channel). */
export function hostSaturation(x: HostImages, i: number, f: number): void {
  const C = x.channels;
  if (C === 1) return;
  const size = imageSize(x);
  const d = x.data;
  for (let p = i * size; p < (i + 1) * size; p += C) {
    const g = (1 - f) * luma(d, p, C);
    for (let c = 0; c < C; c++) d[p + c] = clamp01(f * d[p + c] + g);
  }
}

/** Grayscale (kept as equal channels) of image `i`. */
export function hostGrayscale(x: HostImages, i: number): void {
  const C = x.channels;
  if (C === 1) return;
  const size = imageSize(x);
  const d = x.data;
  for (let p = i * size; p < (i + 1) * size; p += C) {
    const l = luma(d, p, C);
    d[p] = l;
    d[p + 1] = l;
    d[p + 2] = l;
  }
}

/** Hue rotation of image `i` by `f` turns through HSV (torchvision `_rgb2hsv` / `_hsv2rgb`). */
export function hostHue(x: HostImages, i: number, f: number): void {
  if (x.channels === 1) return;
  const size = imageSize(x);
  const d = x.data;
  const fr = Math.fround;
  for (let p = i * size; p < (i + 1) * size; p += 3) {
    const r = d[p];
    const g = d[p + 1];
    const b = d[p + 2];
    const maxc = Math.max(r, g, b);
    const minc = Math.min(r, g, b);
    const eqc = maxc === minc;
    const cr = fr(maxc - minc);
    const s = fr(cr / (eqc ? 1 : maxc));
    const div = eqc ? 1 : cr;
    const rc = fr(fr(maxc - r) / div);
    const gc = fr(fr(maxc - g) / div);
    const bc = fr(fr(maxc - b) / div);
    let h: number;
    if (maxc === r) h = fr(bc - gc);
    else if (maxc === g) h = fr(fr(2 + rc) - bc);
    else h = fr(fr(4 + gc) - rc);
    h = fr(fr(h / 6) + 1);
    h = fr(h - Math.floor(h));
    let hh = fr(h + f);
    hh = fr(hh - Math.floor(hh));
    const v = maxc;
    const h6 = fr(hh * 6);
    const sector = Math.floor(h6);
    const frac = fr(h6 - sector);
    const pp = clamp01(fr(v * fr(1 - s)));
    const q = clamp01(fr(v * fr(1 - fr(s * frac))));
    const t = clamp01(fr(v * fr(1 - fr(s * fr(1 - frac)))));
    switch (((sector % 6) + 6) % 6) {
      case 0:
        d[p] = v;
        d[p + 1] = t;
        d[p + 2] = pp;
        break;
      case 1:
        d[p] = q;
        d[p + 1] = v;
        d[p + 2] = pp;
        break;
      case 2:
        d[p] = pp;
        d[p + 1] = v;
        d[p + 2] = t;
        break;
      case 3:
        d[p] = pp;
        d[p + 1] = q;
        d[p + 2] = v;
        break;
      case 4:
        d[p] = t;
        d[p + 1] = pp;
        d[p + 2] = v;
        break;
      default:
        d[p] = v;
        d[p + 1] = pp;
        d[p + 2] = q;
    }
  }
}

/** Solarize image `i`: x ≥ threshold → 1 − x. */
export function hostSolarize(x: HostImages, i: number, threshold: number): void {
  const size = imageSize(x);
  const d = x.data;
  for (let k = i * size; k < (i + 1) * size; k++) if (d[k] >= threshold) d[k] = 1 - d[k];
}

function reflect(i: number, n: number): number {
  if (i < 0) return -i;
  if (i >= n) return 2 * n - 2 - i;
  return i;
}

/**
 * Gaussian blur of the images `indices` with σ `sigmas[k]`, reflect padding, separable kernel of
 * size `kernelSize` or, by default, `blurKernelSize` of each image's own σ (as `gaussianBlur`).
 */
export function hostBlur(
  x: HostImages,
  indices: readonly number[],
  sigmas: readonly number[],
  kernelSize?: number,
): void {
  if (indices.length === 0) return;
  const { height: H, width: W, channels: C } = x;
  const rowLen = W * C;
  const acc = new Float64Array(rowLen);
  const tmp = new Float32Array(H * rowLen);
  const size = imageSize(x);
  const d = x.data;
  indices.forEach((i, j) => {
    const k = kernelSize ?? blurKernelSize(sigmas[j], H, W);
    const half = (k - 1) / 2;
    if (k % 2 !== 1 || half >= H || half >= W)
      throw new ShapeError(
        `kernelSize: expected an odd size whose half is below the image size ${H}×${W}, got ${k}`,
      );
    const kernel = gaussianKernel1d(k, sigmas[j]);
    const padded = new Float32Array((W + 2 * half) * C);
    const rowIndex = Int32Array.from({ length: H + 2 * half }, (_, y) => reflect(y - half, H));
    const base = i * size;
    // Horizontal: reflect-pad each row once, then one contiguous multiply-add per tap.
    for (let y = 0; y < H; y++) {
      const row = base + y * rowLen;
      padded.set(d.subarray(row, row + rowLen), half * C);
      for (let p = 0; p < half; p++) {
        const left = reflect(p - half, W);
        const right = reflect(W + p, W);
        for (let c = 0; c < C; c++) {
          padded[p * C + c] = d[row + left * C + c];
          padded[(W + half + p) * C + c] = d[row + right * C + c];
        }
      }
      acc.fill(0);
      for (let t = 0; t < k; t++) {
        const w = kernel[t];
        const off = t * C;
        for (let q = 0; q < rowLen; q++) acc[q] += w * padded[off + q];
      }
      tmp.set(acc, y * rowLen);
    }
    // Vertical: whole rows per tap, reflected row indices precomputed.
    for (let y = 0; y < H; y++) {
      acc.fill(0);
      for (let t = 0; t < k; t++) {
        const w = kernel[t];
        const src = rowIndex[y + t] * rowLen;
        for (let q = 0; q < rowLen; q++) acc[q] += w * tmp[src + q];
      }
      const dst = base + y * rowLen;
      for (let q = 0; q < rowLen; q++) d[dst + q] = acc[q];
    }
  });
}

/** Normalise every image: (x − mean) / std per channel. */
export function hostNormalize(x: HostImages, stats: NormalizeStats): void {
  const C = x.channels;
  for (const key of ["mean", "std"] as const)
    if (stats[key].length !== 1 && stats[key].length !== C)
      throw new ShapeError(
        `stats.${key}: expected 1 or ${C} entries, got ${JSON.stringify(stats[key])}`,
      );
  const mean = Array.from({ length: C }, (_, c) =>
    Math.fround(stats.mean[stats.mean.length === 1 ? 0 : c]),
  );
  const std = Array.from({ length: C }, (_, c) =>
    Math.fround(stats.std[stats.std.length === 1 ? 0 : c]),
  );
  const d = x.data;
  for (let k = 0; k < d.length; k += C)
    for (let c = 0; c < C; c++) d[k + c] = Math.fround(d[k + c] - mean[c]) / std[c];
}
