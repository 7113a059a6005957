import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError } from "@sit/core";
import type { Sample } from "../types";
import type { HostImages } from "./host";

/**
 * Decoded samples of one batch in a single zero-padded NHWC float32 tensor in [0, 1]
 * (`uint8 / 255`, as torchvision's `ToTensor`), with each image's own size. Images of different
 * sizes (image folders) share the tensor; samplers read only inside each image's extent.
 */
export interface PackedBatch {
  images: tf.Tensor4D;
  heights: Int32Array;
  widths: Int32Array;
}

/** A {@link PackedBatch} in JS memory (the host execution path). */
export interface HostPackedBatch {
  images: HostImages;
  heights: Int32Array;
  widths: Int32Array;
}

/**
 * Pack samples into a {@link PackedBatch}. `channels` 3 replicates grayscale images to RGB
 * (as PIL's `convert("RGB")`); 1 requires 1-channel samples; undefined keeps the samples'
 * channel count, promoting a mix of 1 and 3 to 3. The caller disposes `images`.
 */
export function packSamples(samples: readonly Sample[], channels?: 1 | 3): PackedBatch {
  const { images, heights, widths } = packSamplesHost(samples, channels);
  return {
    images: tf.tensor4d(images.data, [images.n, images.height, images.width, images.channels]),
    heights,
    widths,
  };
}

/** {@link packSamples} into JS memory. */
export function packSamplesHost(samples: readonly Sample[], channels?: 1 | 3): HostPackedBatch {
  if (samples.length === 0) throw new ConfigError("samples: expected at least one sample, got []");
  let maxH = 0;
  let maxW = 0;
  let maxC = 0;
  samples.forEach((s, i) => {
    if (s.channels !== 1 && s.channels !== 3)
      throw new ShapeError(`samples[${i}].channels: expected 1 or 3, got ${s.channels}`);
    if (s.image.length !== s.height * s.width * s.channels)
      throw new ShapeError(
        `samples[${i}].image: expected ${s.height}×${s.width}×${s.channels} = ${s.height * s.width * s.channels} values, got ${s.image.length}`,
      );
    maxH = Math.max(maxH, s.height);
    maxW = Math.max(maxW, s.width);
    maxC = Math.max(maxC, s.channels);
  });
  const c = channels ?? maxC;
  if (c === 1 && maxC === 3)
    throw new ConfigError(
      "channels: expected 3 for RGB samples, got 1 (convert RGB to grayscale with the grayscale transform instead)",
    );
  const n = samples.length;
  const data = new Float32Array(n * maxH * maxW * c);
  const heights = new Int32Array(n);
  const widths = new Int32Array(n);
  for (let b = 0; b < n; b++) {
    const s = samples[b];
    heights[b] = s.height;
    widths[b] = s.width;
    const bytes = s.image instanceof Uint8Array;
    for (let y = 0; y < s.height; y++) {
      let src = y * s.width * s.channels;
      let dst = (b * maxH + y) * maxW * c;
      for (let x = 0; x < s.width; x++) {
        if (s.channels === c) {
          for (let k = 0; k < c; k++) {
            const v = s.image[src + k];
            data[dst + k] = bytes ? v / 255 : v;
          }
        } else {
          const v = bytes ? s.image[src] / 255 : s.image[src];
          data[dst] = v;
          data[dst + 1] = v;
          data[dst + 2] = v;
        }
        src += s.channels;
        dst += c;
      }
    }
  }
  return { images: { data, n, height: maxH, width: maxW, channels: c }, heights, widths };
}

/**
 * Apply a different function to disjoint groups of images and leave the others unchanged:
 * each group is gathered, transformed, and everything is put back in batch order with one
 * concat and one gather. Returns a new tensor (or `x` itself when no group has an image).
 */
export function applyToGroups(
  x: tf.Tensor4D,
  groups: readonly { indices: readonly number[]; fn: (sub: tf.Tensor4D) => tf.Tensor4D }[],
): tf.Tensor4D {
  const active = groups.filter((g) => g.indices.length > 0);
  if (active.length === 0) return x;
  const batch = x.shape[0];
  if (active.length === 1 && active[0].indices.length === batch) {
    const idx = active[0].indices;
    if (idx.every((v, i) => v === i)) return active[0].fn(x);
  }
  return tf.tidy(() => {
    const mapping = new Int32Array(batch);
    for (let i = 0; i < batch; i++) mapping[i] = i;
    const parts: tf.Tensor4D[] = [x];
    let offset = batch;
    for (const g of active) {
      const sub = tf.gather(x, Int32Array.from(g.indices), 0) as tf.Tensor4D;
      parts.push(g.fn(sub));
      g.indices.forEach((img, j) => {
        mapping[img] = offset + j;
      });
      offset += g.indices.length;
    }
    return tf.gather(tf.concat(parts, 0), mapping, 0) as tf.Tensor4D;
  });
}

/** Indices `i` with `mask[i]` true. */
export function whereTrue(mask: ArrayLike<boolean | number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}
