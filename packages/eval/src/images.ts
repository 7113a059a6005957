import * as tf from "@tensorflow/tfjs";
import { ConfigError, type Rng, ShapeError, describeValue } from "@sit/core";
import { type Sample, packSamples } from "@sit/data";

/**
 * A sample-level transform such as @sit/data's `evalTransform()` or any `BatchTransform` with one
 * view: decoded samples in, NHWC tensors out (the first is used).
 */
export interface SampleTransform {
  apply(samples: readonly Sample[], rng: Rng): tf.Tensor4D[];
}

/**
 * How images are prepared: a {@link SampleTransform} (resize/crop/normalise from samples), or a
 * function over the packed batch `[B, H, W, C]` in [0, 1] (all samples the same size).
 */
export type ImageTransform = SampleTransform | ((images: tf.Tensor4D, rng: Rng) => tf.Tensor4D);

/** Throw unless `t` is undefined or an {@link ImageTransform}. */
export function checkTransform(name: string, t: unknown): void {
  if (t === undefined) return;
  const ok =
    typeof t === "function" ||
    (t !== null && typeof t === "object" && typeof (t as SampleTransform).apply === "function");
  if (!ok)
    throw new ConfigError(
      `${name}: expected a function (images, rng) → images or an object with apply(samples, rng) (e.g. evalTransform()), got ${describeValue(t)}`,
    );
}

/** One batch of samples as an NHWC float32 tensor, transformed. The caller disposes it. */
export function samplesToImages(
  samples: readonly Sample[],
  transform: ImageTransform | undefined,
  rng: Rng,
  first: number,
): tf.Tensor4D {
  if (transform !== undefined && typeof transform !== "function") {
    const views = transform.apply(samples, rng);
    for (let i = 1; i < views.length; i++) views[i].dispose();
    return views[0];
  }
  const same = samples.every(
    (s) =>
      s.height === samples[0].height &&
      s.width === samples[0].width &&
      s.channels === samples[0].channels,
  );
  if (!same) {
    const i = samples.findIndex(
      (s) => s.height !== samples[0].height || s.width !== samples[0].width,
    );
    throw new ShapeError(
      `images: samples ${first} and ${first + Math.max(i, 0)} differ in size (${samples[0].height}×${samples[0].width} vs ${samples[Math.max(i, 0)].height}×${samples[Math.max(i, 0)].width}); give a transform that resizes them (e.g. evalTransform() from @sit/data)`,
    );
  }
  const packed = packSamples(samples);
  if (!transform) return packed.images;
  const out = tf.tidy(() => transform(packed.images, rng));
  if (out !== packed.images) packed.images.dispose();
  return out;
}
