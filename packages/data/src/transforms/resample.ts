import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber } from "@sit/core";

/**
 * Interpolation of resized crops. `bilinear` and `bicubic` follow PyTorch's
 * `interpolate(..., align_corners=False)` without antialiasing (what torchvision applies to
 * tensors): half-pixel centres, edge samples clamped to the crop, bicubic with a = −0.75.
 */
export type Interpolation = "bilinear" | "bicubic";

/**
 * One output image's sampling region along both axes, in source-pixel units of its own image.
 * The region `[top, top+height) × [left, left+width)` is resized to `resizedHeight × resizedWidth`
 * (default: the output size) and the output window starts `offsetY/offsetX` pixels into that
 * resized image (non-zero for a centre crop after a resize).
 */
export interface SampleRegion {
  top: number;
  left: number;
  height: number;
  width: number;
  resizedHeight?: number;
  resizedWidth?: number;
  offsetY?: number;
  offsetX?: number;
}

const CUBIC_A = -0.75;

function cubicNear(x: number): number {
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
}
function cubicFar(x: number): number {
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
}

/** Number of source taps per output sample. */
export function tapsOf(mode: Interpolation): number {
  return mode === "bilinear" ? 2 : 4;
}

/**
 * Source indices and weights for one axis (PyTorch's `compute_indices_weights_*`): output sample
 * `i` reads source position `scale·(i + offset + 0.5) − 0.5` of a region of `extent` pixels that
 * starts at `start`, resized to `resized` samples. Writes `outSize·taps` entries at `at`.
 */
export function axisTaps(
  mode: Interpolation,
  start: number,
  extent: number,
  resized: number,
  offset: number,
  outSize: number,
  idx: Int32Array,
  weights: Float32Array,
  at: number,
): void {
  // PyTorch computes the scale in float32 (`area_pixel_compute_scale<float>`).
  const scale = Math.fround(extent / resized);
  const last = extent - 1;
  for (let i = 0; i < outSize; i++) {
    const src = Math.fround(scale * (i + offset + 0.5) - 0.5);
    const o = at + i * tapsOf(mode);
    if (mode === "bilinear") {
      const s = Math.max(src, 0);
      const i0 = Math.min(Math.floor(s), last);
      const i1 = i0 < last ? i0 + 1 : i0;
      const l1 = Math.min(Math.max(s - i0, 0), 1);
      idx[o] = start + i0;
      idx[o + 1] = start + i1;
      weights[o] = 1 - l1;
      weights[o + 1] = l1;
    } else {
      const i0 = Math.floor(src);
      const t = src - i0;
      const w = [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)];
      for (let k = 0; k < 4; k++) {
        idx[o + k] = start + Math.min(Math.max(i0 - 1 + k, 0), last);
        weights[o + k] = w[k];
      }
    }
  }
}

/**
 * Resample a batch: output image `b` is `regions[b]` of source image `sourceIndex[b]` of `x`,
 * resized to `outHeight × outWidth` with PyTorch's interpolation rules. Images of different sizes
 * travel in one zero-padded tensor; each region must lie inside its own image. Two batched
 * gathers (rows, then columns) and weighted sums: exact torchvision semantics on every backend,
 * including the edge clamping that `tf.image.cropAndResize` (align-corners sampling with
 * extrapolation) cannot reproduce when a crop is up-sampled.
 */
export function resampleRegions(
  x: tf.Tensor4D,
  regions: readonly SampleRegion[],
  outHeight: number,
  outWidth: number,
  mode: Interpolation = "bilinear",
  sourceIndex?: ArrayLike<number>,
): tf.Tensor4D {
  checkNumber("outHeight", outHeight, { min: 1, integer: true });
  checkNumber("outWidth", outWidth, { min: 1, integer: true });
  if (mode !== "bilinear" && mode !== "bicubic")
    throw new ConfigError(`mode: expected "bilinear" or "bicubic", got ${JSON.stringify(mode)}`);
  const [batch, height, width, channels] = x.shape;
  const n = regions.length;
  if (sourceIndex === undefined && n !== batch)
    throw new ShapeError(`regions: expected ${batch} regions (one per image), got ${n}`);
  const taps = tapsOf(mode);
  const iy = new Int32Array(n * outHeight * taps);
  const wy = new Float32Array(n * outHeight * taps);
  const ix = new Int32Array(n * outWidth * taps);
  const wx = new Float32Array(n * outWidth * taps);
  for (let b = 0; b < n; b++) {
    const r = regions[b];
    if (
      !(r.height >= 1 && r.width >= 1 && r.top >= 0 && r.left >= 0) ||
      r.top + r.height > height ||
      r.left + r.width > width
    ) {
      throw new ShapeError(
        `regions[${b}]: expected a region inside the ${height}×${width} image, got ${JSON.stringify(r)}`,
      );
    }
    axisTaps(
      mode,
      r.top,
      r.height,
      r.resizedHeight ?? outHeight,
      r.offsetY ?? 0,
      outHeight,
      iy,
      wy,
      b * outHeight * taps,
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
      b * outWidth * taps,
    );
  }
  // Global row indices into the batch folded as [B·H, W·C] (batched gathers with `batchDims`
  // give wrong results on the wasm backend in tfjs 4.22, so the batch is folded instead).
  const src = sourceIndex === undefined ? null : Int32Array.from(sourceIndex);
  for (let b = 0; b < n; b++) {
    const image = src === null ? b : src[b];
    if (!(image >= 0 && image < batch))
      throw new ShapeError(
        `sourceIndex[${b}]: expected an image index in [0, ${batch}), got ${image}`,
      );
    for (let k = 0; k < outHeight * taps; k++) iy[b * outHeight * taps + k] += image * height;
    // Columns are gathered from rows already reduced to this output image, folded as [n·W, …].
    for (let k = 0; k < outWidth * taps; k++) ix[b * outWidth * taps + k] += b * width;
  }
  return tf.tidy(() => {
    const rows = tf
      .gather(x.reshape([batch * height, width * channels]), iy, 0)
      .reshape([n, outHeight, taps, width, channels])
      .mul(tf.tensor5d(wy, [n, outHeight, taps, 1, 1]))
      .sum(2);
    // [n, S, W, C] → [n·W, S·C]: one gather of whole columns per tap.
    const columns = rows.transpose([0, 2, 1, 3]).reshape([n * width, outHeight * channels]);
    const out = tf
      .gather(columns, ix, 0)
      .reshape([n, outWidth, taps, outHeight, channels])
      .mul(tf.tensor5d(wx, [n, outWidth, taps, 1, 1]))
      .sum(2)
      .transpose([0, 2, 1, 3]) as tf.Tensor4D;
    // Bicubic overshoots; images stay in [0, 1] as after PIL's uint8 resampling.
    return mode === "bicubic" ? (out.clipByValue(0, 1) as tf.Tensor4D) : out;
  });
}
