import type * as tf from "@tensorflow/tfjs";
import { type Rng, checkNumber } from "@sit/core";
import { applyToGroups, whereTrue } from "./batch";
import { gaussianBlur } from "./blur";
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  grayscale,
  horizontalFlip,
  solarize,
} from "./color";
import { checkRange } from "./geometry";
import {
  type HostImages,
  hostBlur,
  hostBrightness,
  hostContrast,
  hostFlip,
  hostGrayscale,
  hostHue,
  hostNormalize,
  hostSaturation,
  hostSolarize,
} from "./host";
import { type NormalizeStats, normalize } from "./normalize";

/**
 * A batched image operation on NHWC float32 tensors. `apply` returns a new tensor (the input is
 * left for the caller to dispose) and draws every random choice from `rng`, in a fixed order,
 * so a seed fixes the result.
 */
export interface TensorOp {
  apply(x: tf.Tensor4D, rng: Rng): tf.Tensor4D;
  /**
   * The same operation on a JS-memory batch (the host path used on the cpu and wasm backends),
   * with the same random draws; may modify `x` in place. Ops without it make a transform switch
   * to tensors from that op on.
   */
  applyHost?(x: HostImages, rng: Rng): HostImages;
}

function checkProbability(name: string, p: number): number {
  return checkNumber(name, p, { min: 0, max: 1 });
}

function bernoulliMask(rng: Rng, n: number, p: number): boolean[] {
  const m: boolean[] = [];
  for (let i = 0; i < n; i++) m.push(rng.bernoulli(p));
  return m;
}

/** Copy `x` unless an op returned it unchanged (so the caller can always dispose input and output separately). */
function fresh(out: tf.Tensor4D, x: tf.Tensor4D): tf.Tensor4D {
  return out === x ? x.clone() : out;
}

/** Horizontal flip of each image with probability `p` (default 0.5). Draws: one Bernoulli per image. */
export class RandomHorizontalFlip implements TensorOp {
  readonly p: number;
  constructor(options: { p?: number } = {}) {
    this.p = checkProbability("p", options.p ?? 0.5);
  }
  /** Which images flip. */
  sample(rng: Rng, n: number): boolean[] {
    return bernoulliMask(rng, n, this.p);
  }
  apply(x: tf.Tensor4D, rng: Rng): tf.Tensor4D {
    const mask = this.sample(rng, x.shape[0]);
    return fresh(applyToGroups(x, [{ indices: whereTrue(mask), fn: horizontalFlip }]), x);
  }
  applyHost(x: HostImages, rng: Rng): HostImages {
    for (const i of whereTrue(this.sample(rng, x.n))) hostFlip(x, i);
    return x;
  }
}

/** Options of {@link ColorJitter}: strengths as in torchvision (0 disables an adjustment). */
export interface ColorJitterOptions {
  /** Brightness factor ~ U(max(0, 1−b), 1+b). */
  brightness?: number;
  /** Contrast factor ~ U(max(0, 1−c), 1+c). */
  contrast?: number;
  /** Saturation factor ~ U(max(0, 1−s), 1+s). */
  saturation?: number;
  /** Hue shift ~ U(−h, h), h ≤ 0.5. */
  hue?: number;
  /** Probability that an image is jittered at all (torchvision `RandomApply`); default 1. */
  p?: number;
}

/** Per-image parameters drawn by {@link ColorJitter.sample}. */
export interface ColorJitterParams {
  applied: boolean[];
  /** Order of the four adjustments per image: 0 brightness, 1 contrast, 2 saturation, 3 hue. */
  order: Int32Array[];
  brightness: Float64Array;
  contrast: Float64Array;
  saturation: Float64Array;
  hue: Float64Array;
}

/**
 * torchvision's `ColorJitter` wrapped in `RandomApply(p)`: each image, independently, with
 * probability p gets brightness, contrast, saturation and hue adjustments in its own random
 * order, with factors drawn uniformly in the ranges. Images sharing an adjustment at a position of
 * the order are processed together. Draws per image, in order: the Bernoulli, a permutation of 4,
 * then the brightness, contrast, saturation and hue factors (all drawn even when unused, so the
 * stream does not depend on outcomes).
 */
export class ColorJitter implements TensorOp {
  readonly brightness: number;
  readonly contrast: number;
  readonly saturation: number;
  readonly hue: number;
  readonly p: number;
  constructor(options: ColorJitterOptions = {}) {
    this.brightness = checkNumber("brightness", options.brightness ?? 0, { min: 0 });
    this.contrast = checkNumber("contrast", options.contrast ?? 0, { min: 0 });
    this.saturation = checkNumber("saturation", options.saturation ?? 0, { min: 0 });
    this.hue = checkNumber("hue", options.hue ?? 0, { min: 0, max: 0.5 });
    this.p = checkProbability("p", options.p ?? 1);
  }

  sample(rng: Rng, n: number): ColorJitterParams {
    const params: ColorJitterParams = {
      applied: [],
      order: [],
      brightness: new Float64Array(n),
      contrast: new Float64Array(n),
      saturation: new Float64Array(n),
      hue: new Float64Array(n),
    };
    const factor = (s: number): number => rng.uniform(Math.max(0, 1 - s), 1 + s);
    for (let i = 0; i < n; i++) {
      params.applied.push(rng.bernoulli(this.p));
      params.order.push(rng.permutation(4));
      params.brightness[i] = factor(this.brightness);
      params.contrast[i] = factor(this.contrast);
      params.saturation[i] = factor(this.saturation);
      params.hue[i] = rng.uniform(-this.hue, this.hue);
    }
    return params;
  }

  /** Apply drawn parameters (exposed for tests and for reproducing a batch). */
  applyParams(x: tf.Tensor4D, params: ColorJitterParams): tf.Tensor4D {
    const enabled = [this.brightness > 0, this.contrast > 0, this.saturation > 0, this.hue > 0];
    const fns = [
      (sub: tf.Tensor4D, f: number[]) => adjustBrightness(sub, f),
      (sub: tf.Tensor4D, f: number[]) => adjustContrast(sub, f),
      (sub: tf.Tensor4D, f: number[]) => adjustSaturation(sub, f),
      (sub: tf.Tensor4D, f: number[]) => adjustHue(sub, f),
    ];
    const values = [params.brightness, params.contrast, params.saturation, params.hue];
    let current = x;
    for (let position = 0; position < 4; position++) {
      const groups = [0, 1, 2, 3]
        .filter((op) => enabled[op])
        .map((op) => {
          const indices = whereTrue(
            params.applied.map((a, i) => a && params.order[i][position] === op),
          );
          const f = indices.map((i) => values[op][i]);
          return { indices, fn: (sub: tf.Tensor4D) => fns[op](sub, f) };
        });
      const next = applyToGroups(current, groups);
      if (current !== x && next !== current) current.dispose();
      current = next;
    }
    return fresh(current, x);
  }

  apply(x: tf.Tensor4D, rng: Rng): tf.Tensor4D {
    return this.applyParams(x, this.sample(rng, x.shape[0]));
  }

  /** {@link ColorJitter.applyParams} on a JS-memory batch, in place. */
  applyParamsHost(x: HostImages, params: ColorJitterParams): HostImages {
    const enabled = [this.brightness > 0, this.contrast > 0, this.saturation > 0, this.hue > 0];
    for (let i = 0; i < x.n; i++) {
      if (!params.applied[i]) continue;
      for (const op of params.order[i]) {
        if (!enabled[op]) continue;
        if (op === 0) hostBrightness(x, i, params.brightness[i]);
        else if (op === 1) hostContrast(x, i, params.contrast[i]);
        else if (op === 2) hostSaturation(x, i, params.saturation[i]);
        else hostHue(x, i, params.hue[i]);
      }
    }
    return x;
  }

  applyHost(x: HostImages, rng: Rng): HostImages {
    return this.applyParamsHost(x, this.sample(rng, x.n));
  }
}

/** Grayscale (kept as 3 equal channels) with probability `p` (default 0.1). One Bernoulli per image. */
export class RandomGrayscale implements TensorOp {
  readonly p: number;
  constructor(options: { p?: number } = {}) {
    this.p = checkProbability("p", options.p ?? 0.1);
  }
  sample(rng: Rng, n: number): boolean[] {
    return bernoulliMask(rng, n, this.p);
  }
  apply(x: tf.Tensor4D, rng: Rng): tf.Tensor4D {
    const mask = this.sample(rng, x.shape[0]);
    if (x.shape[3] === 1) return x.clone();
    return fresh(applyToGroups(x, [{ indices: whereTrue(mask), fn: (s) => grayscale(s, 3) }]), x);
  }
  applyHost(x: HostImages, rng: Rng): HostImages {
    for (const i of whereTrue(this.sample(rng, x.n))) hostGrayscale(x, i);
    return x;
  }
}

/** Options of {@link RandomGaussianBlur}. */
export interface GaussianBlurOptions {
  /** σ ~ U(sigma[0], sigma[1]) per image; default [0.1, 2.0] (DINO/SiT's PIL radius range). */
  sigma?: readonly [number, number];
  /** Probability of blurring an image; default 0.5. */
  p?: number;
  /** Odd kernel size for every image; default `2·ceil(3σ)+1` per image (see `blurKernelSize`). */
  kernelSize?: number;
}

/**
 * Gaussian blur with probability p and a per-image σ (reflect padding, separable kernel).
 * SiT's recipe blurs with PIL's `GaussianBlur(radius)`, whose radius is the Gaussian's σ; this
 * uses a true sampled Gaussian kernel instead of PIL's box-blur approximation.
 * Draws per image: the Bernoulli, then σ.
 */
export class RandomGaussianBlur implements TensorOp {
  readonly sigma: readonly [number, number];
  readonly p: number;
  readonly kernelSize?: number;
  constructor(options: GaussianBlurOptions = {}) {
    this.sigma = checkRange("sigma", options.sigma ?? [0.1, 2.0], { positive: true });
    this.p = checkProbability("p", options.p ?? 0.5);
    if (options.kernelSize !== undefined)
      checkNumber("kernelSize", options.kernelSize, { min: 1, integer: true });
    this.kernelSize = options.kernelSize;
  }
  sample(rng: Rng, n: number): { applied: boolean[]; sigma: Float64Array } {
    const applied: boolean[] = [];
    const sigma = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      applied.push(rng.bernoulli(this.p));
      sigma[i] = rng.uniform(this.sigma[0], this.sigma[1]);
    }
    return { applied, sigma };
  }
  apply(x: tf.Tensor4D, rng: Rng): tf.Tensor4D {
    const { applied, sigma } = this.sample(rng, x.shape[0]);
    const indices = whereTrue(applied);
    const sigmas = indices.map((i) => sigma[i]);
    return fresh(
      applyToGroups(x, [{ indices, fn: (s) => gaussianBlur(s, sigmas, this.kernelSize) }]),
      x,
    );
  }
  applyHost(x: HostImages, rng: Rng): HostImages {
    const { applied, sigma } = this.sample(rng, x.n);
    const indices = whereTrue(applied);
    hostBlur(
      x,
      indices,
      indices.map((i) => sigma[i]),
      this.kernelSize,
    );
    return x;
  }
}

/**
 * Solarize with probability p (default 0.2): pixels ≥ threshold become 1 − x. The default
 * threshold 128/255 matches PIL's `ImageOps.solarize(img, 128)` used by SiT on uint8 images.
 * One Bernoulli per image.
 */
export class RandomSolarize implements TensorOp {
  readonly threshold: number;
  readonly p: number;
  constructor(options: { threshold?: number; p?: number } = {}) {
    this.threshold = checkNumber("threshold", options.threshold ?? 128 / 255);
    this.p = checkProbability("p", options.p ?? 0.2);
  }
  sample(rng: Rng, n: number): boolean[] {
    return bernoulliMask(rng, n, this.p);
  }
  apply(x: tf.Tensor4D, rng: Rng): tf.Tensor4D {
    const mask = this.sample(rng, x.shape[0]);
    return fresh(
      applyToGroups(x, [{ indices: whereTrue(mask), fn: (s) => solarize(s, this.threshold) }]),
      x,
    );
  }
  applyHost(x: HostImages, rng: Rng): HostImages {
    for (const i of whereTrue(this.sample(rng, x.n))) hostSolarize(x, i, this.threshold);
    return x;
  }
}

/** Per-channel normalisation (no randomness). */
export class Normalize implements TensorOp {
  constructor(readonly stats: NormalizeStats) {}
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return normalize(x, this.stats);
  }
  applyHost(x: HostImages): HostImages {
    hostNormalize(x, this.stats);
    return x;
  }
}
