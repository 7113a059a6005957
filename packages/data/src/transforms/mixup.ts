import * as tf from "@tensorflow/tfjs";
import { type Rng, checkNumber } from "@sit/core";

/** Options of {@link mixBatch}; defaults are DeiT's (timm `Mixup`, batch mode). */
export interface MixupOptions {
  /** Beta(α, α) of mixup; 0 disables mixup. Default 0.8. */
  mixupAlpha?: number;
  /** Beta(α, α) of CutMix; 0 disables CutMix. Default 1.0. */
  cutmixAlpha?: number;
  /** Probability that a batch is mixed at all. Default 1. */
  prob?: number;
  /** With both enabled: probability of CutMix rather than mixup. Default 0.5. */
  switchProb?: number;
}

/** A Gamma(shape, 1) draw (Marsaglia–Tsang; shape < 1 boosted by U^(1/shape)). */
export function sampleGamma(rng: Rng, shape: number): number {
  if (shape < 1) return sampleGamma(rng, shape + 1) * rng.float() ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.float();
    if (u < 1 - 0.0331 * x ** 4) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A Beta(a, b) draw from two Gamma draws. */
export function sampleBeta(rng: Rng, a: number, b: number): number {
  const x = sampleGamma(rng, a);
  const y = sampleGamma(rng, b);
  return x / (x + y);
}

/**
 * Soft targets with label smoothing: `1 − ε + ε/C` on the true class, `ε/C` elsewhere
 * (timm's convention, which DeiT uses); `smoothing = 0` gives plain float32 one-hots.
 * Correct on every backend (see below).
 */
export function smoothOneHot(
  labels: tf.Tensor1D,
  numClasses: number,
  smoothing: number,
): tf.Tensor2D {
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  return tf.tidy(() => {
    // Not `tf.oneHot(labels, C, on, off, "float32")`: tfjs-backend-wasm's OneHot kernel (4.22)
    // truncates on/off to integers and writes int32 bit patterns whatever the dtype, so on wasm
    // that gives 0 for 0.925/0.025 and 1.4e-45 (int 1 read as float) for 1/0 — targets of zero,
    // hence a zero loss and no learning. An int32 one-hot is right everywhere; map 1 → on, 0 → off.
    const hot = tf.cast(tf.oneHot(labels, numClasses), "float32");
    if (on === 1 && off === 0) return hot as tf.Tensor2D;
    return tf.add(tf.mul(hot, on - off), off) as tf.Tensor2D;
  });
}

/** What {@link mixBatch} did, for logging and tests. */
export interface MixInfo {
  kind: "none" | "mixup" | "cutmix";
  /** Weight of the original images/targets (after CutMix's area correction). */
  lambda: number;
  /** CutMix box [y0, y1) × [x0, x1), when kind is "cutmix". */
  box?: [number, number, number, number];
}

/**
 * Mixup / CutMix on a batch (one λ per batch, partner = the batch reversed, as timm's `Mixup`):
 * mixup blends images, CutMix pastes the partner's box of area ≈ (1 − λ) and corrects λ to the
 * box's exact area; targets (smoothed one-hots) are blended with the same λ. Returns new tensors.
 */
export function mixBatch(
  images: tf.Tensor4D,
  targets: tf.Tensor2D,
  rng: Rng,
  options: MixupOptions = {},
): { images: tf.Tensor4D; targets: tf.Tensor2D; info: MixInfo } {
  const mixAlpha = checkNumber("mixupAlpha", options.mixupAlpha ?? 0.8, { min: 0 });
  const cutAlpha = checkNumber("cutmixAlpha", options.cutmixAlpha ?? 1.0, { min: 0 });
  const prob = checkNumber("prob", options.prob ?? 1, { min: 0, max: 1 });
  const switchProb = checkNumber("switchProb", options.switchProb ?? 0.5, { min: 0, max: 1 });
  let useCutmix = false;
  let lambda = 1;
  if (mixAlpha > 0 || cutAlpha > 0) {
    useCutmix = mixAlpha > 0 && cutAlpha > 0 ? rng.float() < switchProb : cutAlpha > 0;
    const alpha = useCutmix ? cutAlpha : mixAlpha;
    const lam = sampleBeta(rng, alpha, alpha);
    if (rng.float() < prob) lambda = lam;
  }
  if (lambda === 1)
    return { images: images.clone(), targets: targets.clone(), info: { kind: "none", lambda: 1 } };
  const [, h, w] = images.shape;
  let info: MixInfo = { kind: "mixup", lambda };
  const [mixedImages, mixedTargets] = tf.tidy(() => {
    const partnerImages = tf.reverse(images, 0);
    const partnerTargets = tf.reverse(targets, 0);
    let mixedImages: tf.Tensor4D;
    if (useCutmix) {
      const ratio = Math.sqrt(1 - lambda);
      const cutH = Math.floor(h * ratio);
      const cutW = Math.floor(w * ratio);
      const cy = rng.int(0, h);
      const cx = rng.int(0, w);
      const y0 = Math.min(Math.max(cy - Math.floor(cutH / 2), 0), h);
      const y1 = Math.min(Math.max(cy + Math.floor(cutH / 2), 0), h);
      const x0 = Math.min(Math.max(cx - Math.floor(cutW / 2), 0), w);
      const x1 = Math.min(Math.max(cx + Math.floor(cutW / 2), 0), w);
      const mask = new Float32Array(h * w);
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) mask[y * w + x] = 1;
      const m = tf.tensor4d(mask, [1, h, w, 1]);
      mixedImages = tf.add(tf.mul(images, tf.sub(1, m)), tf.mul(partnerImages, m)) as tf.Tensor4D;
      lambda = 1 - ((y1 - y0) * (x1 - x0)) / (h * w);
      info = { kind: "cutmix", lambda, box: [y0, y1, x0, x1] };
    } else {
      mixedImages = tf.add(
        tf.mul(images, lambda),
        tf.mul(partnerImages, 1 - lambda),
      ) as tf.Tensor4D;
    }
    const targetsOut = tf.add(
      tf.mul(targets, lambda),
      tf.mul(partnerTargets, 1 - lambda),
    ) as tf.Tensor2D;
    return [mixedImages, targetsOut] as [tf.Tensor4D, tf.Tensor2D];
  });
  return { images: mixedImages, targets: mixedTargets, info };
}
