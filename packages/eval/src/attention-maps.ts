// What a backbone looks at, as pictures: the CLS token's attention to each patch, laid over the
// image. `sit attention`, TensorBoard's attention pictures and the playground page draw it the same
// way from here (pixels only: writing PNG files or canvases is each caller's part).
import type { Module } from "@sit/core";
import { ConfigError, checkNumber } from "@sit/core";
import type { NormalizeStats } from "@sit/data";
import type { VisionTransformer } from "@sit/vit";
import * as tf from "@tensorflow/tfjs";

/** One picture: RGB values in [0, 1], row-major `[h, w, 3]`. */
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

/** A value in [0, 1] through the heat colour map (RGB in [0, 1]). */
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
 * Attention shown as a multiple of uniform attention (1/N over N patches) on a scale shared by
 * every map of the picture, never below this many times uniform: an untrained model attends
 * almost uniformly, and stretching its ±10 % noise over the whole colour range (as per-map
 * min–max scaling does) would draw structure that is not there.
 */
export const ATTENTION_SCALE_FLOOR = 4;

/** Top of the shared colour scale: the largest ratio shown, at least {@link ATTENTION_SCALE_FLOOR}. */
export function attentionScaleMax(ratios: ArrayLike<number>): number {
  let max = ATTENTION_SCALE_FLOOR;
  for (let i = 0; i < ratios.length; i++) if (ratios[i] > max) max = ratios[i];
  return max;
}

/**
 * The attention map `ratios` (one value per patch of a `gh × gw` grid, as multiples of uniform)
 * laid over `image`: the picture in grey under the heat colour of each patch, more opaque where
 * attention is high, so that what the head looks at stays recognisable.
 */
export function overlayAttention(
  image: RgbImage,
  ratios: ArrayLike<number>,
  gh: number,
  gw: number,
  scaleMax: number,
): RgbImage {
  if (ratios.length !== gh * gw)
    throw new ConfigError(
      `ratios: expected ${gh * gw} values (a ${gh}×${gw} patch grid), got ${ratios.length}`,
    );
  const { height, width } = image;
  const data = new Float32Array(height * width * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const gy = Math.min(gh - 1, Math.floor((y * gh) / height));
      const gx = Math.min(gw - 1, Math.floor((x * gw) / width));
      const t = Math.min(1, Math.max(0, ratios[gy * gw + gx] / scaleMax));
      const [r, g, b] = heatColor(t);
      const o = (y * width + x) * 3;
      const grey = 0.299 * image.data[o] + 0.587 * image.data[o + 1] + 0.114 * image.data[o + 2];
      const a = 0.35 + 0.5 * t;
      data[o] = (1 - a) * grey + a * r;
      data[o + 1] = (1 - a) * grey + a * g;
      data[o + 2] = (1 - a) * grey + a * b;
    }
  return { data, height, width };
}

/** Run `fn` with `module` in eval mode (no drop path, BatchNorm on running statistics), restoring its mode. */
export function inEvalMode<T>(module: Module, fn: () => T): T {
  const was = module.training;
  module.eval();
  try {
    return fn();
  } finally {
    module.train(was);
  }
}

/**
 * The CLS token's attention to each patch in block `block` of `backbone` (negative counts from the
 * end), per image and head, as multiples of uniform attention (× N patches): `[B, heads, N]`. The
 * backbone runs in eval mode; the caller disposes the result (read it with `data()` on any
 * backend, `dataSync()` where the backend allows).
 */
export function clsAttention(
  backbone: VisionTransformer,
  images: tf.Tensor4D,
  block = -1,
): tf.Tensor3D {
  const depth = backbone.depth;
  const index = block < 0 ? depth + block : block;
  checkNumber("block", index, { integer: true, min: 0, max: depth - 1 });
  const last = index === depth - 1;
  return inEvalMode(backbone, () =>
    tf.tidy(() => {
      const out = backbone.forward(images, { attentions: last ? "last" : true });
      const att = out.attentions![last ? out.attentions!.length - 1 : index];
      const [b, heads, t] = att.shape;
      // Row 0 of each head: how the CLS token attends to the patches (CLS column dropped).
      const row = tf.reshape(tf.slice(att, [0, 0, 0, 1], [b, heads, 1, t - 1]), [b, heads, t - 1]);
      return tf.mul(row, t - 1) as tf.Tensor3D;
    }),
  );
}

/**
 * {@link clsAttention}'s values (`[B, heads, N]`, read back) as maps per image: each head's, then
 * the mean of the heads.
 */
export function attentionMaps(
  values: Float32Array,
  shape: readonly [number, number, number],
): Float32Array[][] {
  const [B, heads, n] = shape;
  if (values.length !== B * heads * n)
    throw new ConfigError(
      `values: expected ${B * heads * n} values for shape [${shape.join(", ")}], got ${values.length}`,
    );
  return Array.from({ length: B }, (_, i) => {
    const perHead: Float32Array[] = [];
    const mean = new Float32Array(n);
    for (let h = 0; h < heads; h++) {
      const map = values.slice((i * heads + h) * n, (i * heads + h + 1) * n);
      for (let p = 0; p < n; p++) mean[p] += map[p] / heads;
      perHead.push(map);
    }
    return [...perHead, mean];
  });
}
