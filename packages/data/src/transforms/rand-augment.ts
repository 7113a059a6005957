import * as tf from "@tensorflow/tfjs";
import { ConfigError, type Rng, checkNumber, describeValue } from "@sit/core";

/**
 * The RandAugment operations implemented here: timm's "increasing" set (`rand-m9-mstd0.5-inc1`,
 * DeiT's policy) minus `Equalize` (histogram equalisation is not implemented). Magnitudes follow
 * timm's scales at level m/10: rotate ±30°·l, shear ±0.3·l, translate ±0.45·l of the side,
 * brightness/colour/contrast/sharpness factor 1 ± 0.9·l, posterize to 4 − ⌊4·l⌋ bits, solarize
 * threshold 1 − l, solarize-add +110/255·l below 0.5. Geometric ops fill with 0.5 grey (timm fills
 * with the ImageNet mean colour) and sample bilinearly.
 */
export const RAND_AUGMENT_OPS = [
  "AutoContrast",
  "Invert",
  "Rotate",
  "Posterize",
  "Solarize",
  "SolarizeAdd",
  "Color",
  "Contrast",
  "Brightness",
  "Sharpness",
  "ShearX",
  "ShearY",
  "TranslateX",
  "TranslateY",
] as const;

/** One of {@link RAND_AUGMENT_OPS}. */
export type RandAugmentOp = (typeof RAND_AUGMENT_OPS)[number];

/** Options of {@link randAugment}; defaults are DeiT's `rand-m9-mstd0.5-inc1`. */
export interface RandAugmentOptions {
  /** Operations applied in sequence per image (each drawn uniformly). Default 2. */
  numOps?: number;
  /** Magnitude in [0, 10]. Default 9. */
  magnitude?: number;
  /** Std of the Gaussian noise added to the magnitude per op (clipped to [0, 10]). Default 0.5. */
  magnitudeStd?: number;
  /** Probability that each drawn op is applied. Default 0.5. */
  prob?: number;
  /** Restrict to these ops. Default all of {@link RAND_AUGMENT_OPS}. */
  ops?: RandAugmentOp[];
}

/**
 * RandAugment on a batch of NHWC images in [0, 1]: for each image, `numOps` ops drawn uniformly
 * from {@link RAND_AUGMENT_OPS}, each applied with probability `prob` at a noisy magnitude.
 * Batched: every op present in a slot runs once over the batch with per-image parameters and a
 * per-image selection mask. All draws come from `rng`. Returns a new tensor.
 */
export function randAugment(
  images: tf.Tensor4D,
  rng: Rng,
  options: RandAugmentOptions = {},
): tf.Tensor4D {
  const numOps = checkNumber("numOps", options.numOps ?? 2, { integer: true, min: 0 });
  const magnitude = checkNumber("magnitude", options.magnitude ?? 9, { min: 0, max: 10 });
  const mstd = checkNumber("magnitudeStd", options.magnitudeStd ?? 0.5, { min: 0 });
  const prob = checkNumber("prob", options.prob ?? 0.5, { min: 0, max: 1 });
  const ops = options.ops ?? [...RAND_AUGMENT_OPS];
  if (!Array.isArray(ops) || ops.length === 0 || ops.some((o) => !RAND_AUGMENT_OPS.includes(o)))
    throw new ConfigError(
      `ops: expected a non-empty list of ${RAND_AUGMENT_OPS.join(", ")}, got ${describeValue(ops)}`,
    );
  if (images.rank !== 4)
    throw new ConfigError(`images: expected NHWC [B, H, W, C], got [${images.shape}]`);
  const b = images.shape[0];
  let x: tf.Tensor4D = images.clone();
  for (let slot = 0; slot < numOps; slot++) {
    // Per image: which op, whether applied, its level in [0, 1] and a random sign.
    const chosen: RandAugmentOp[] = [];
    const level = new Float32Array(b);
    const sign = new Float32Array(b);
    const apply = new Array<boolean>(b);
    for (let i = 0; i < b; i++) {
      chosen.push(ops[rng.int(0, ops.length)]);
      apply[i] = rng.float() < prob;
      const m = mstd > 0 ? Math.min(10, Math.max(0, rng.normal(magnitude, mstd))) : magnitude;
      level[i] = m / 10;
      sign[i] = rng.float() < 0.5 ? -1 : 1;
    }
    for (const op of new Set(chosen)) {
      const mask = Float32Array.from(chosen, (o, i) => (o === op && apply[i] ? 1 : 0));
      if (!mask.some((v) => v === 1)) continue;
      const next = tf.tidy(() => {
        const out = applyOp(op, x, level, sign);
        const m = tf.tensor4d(mask, [b, 1, 1, 1]);
        return tf.add(tf.mul(out, m), tf.mul(x, tf.sub(1, m))) as tf.Tensor4D;
      });
      x.dispose();
      x = next;
    }
  }
  return x;
}

function perImage(v: Float32Array): tf.Tensor4D {
  return tf.tensor4d(v, [v.length, 1, 1, 1]);
}

/** Grey level (ITU-R 601-2 luma, as PIL's "L") `[B, H, W, 1]`; a 1-channel image is its own grey. */
function grey(x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] !== 3) return tf.mean(x, 3, true) as tf.Tensor4D;
  return tf.sum(tf.mul(x, tf.tensor1d([0.299, 0.587, 0.114])), 3, true) as tf.Tensor4D;
}

function blend(base: tf.Tensor, x: tf.Tensor, factor: tf.Tensor): tf.Tensor4D {
  // PIL's ImageEnhance: base + factor·(x − base), clipped to the pixel range.
  return tf.clipByValue(tf.add(base, tf.mul(factor, tf.sub(x, base))), 0, 1) as tf.Tensor4D;
}

function applyOp(
  op: RandAugmentOp,
  x: tf.Tensor4D,
  level: Float32Array,
  sign: Float32Array,
): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const signed = (scale: number) => Float32Array.from(level, (l, i) => l * scale * sign[i]);
  switch (op) {
    case "AutoContrast": {
      const lo = tf.min(x, [1, 2], true);
      const hi = tf.max(x, [1, 2], true);
      const range = tf.sub(hi, lo);
      // A flat channel stays as it is (PIL leaves it unchanged).
      const safe = tf.where(tf.greater(range, 0), range, tf.onesLike(range));
      const stretched = tf.div(tf.sub(x, lo), safe);
      return tf.where(tf.greater(range, 0).broadcastTo(x.shape), stretched, x) as tf.Tensor4D;
    }
    case "Invert":
      return tf.sub(1, x) as tf.Tensor4D;
    case "Posterize": {
      const shift = Float32Array.from(level, (l) => 2 ** (8 - (4 - Math.floor(4 * l))));
      const s = perImage(shift);
      return tf.div(tf.mul(tf.floor(tf.div(tf.round(tf.mul(x, 255)), s)), s), 255) as tf.Tensor4D;
    }
    case "Solarize": {
      const thr = perImage(Float32Array.from(level, (l) => 1 - l));
      return tf.where(tf.greaterEqual(x, thr), tf.sub(1, x), x) as tf.Tensor4D;
    }
    case "SolarizeAdd": {
      const add = perImage(Float32Array.from(level, (l) => (110 * l) / 255));
      return tf.where(tf.less(x, 0.5), tf.clipByValue(tf.add(x, add), 0, 1), x) as tf.Tensor4D;
    }
    case "Brightness":
      return blend(tf.zerosLike(x), x, perImage(signed(0.9).map((v) => 1 + v)));
    case "Color":
      return blend(grey(x), x, perImage(signed(0.9).map((v) => 1 + v)));
    case "Contrast":
      return blend(tf.mean(grey(x), [1, 2, 3], true), x, perImage(signed(0.9).map((v) => 1 + v)));
    case "Sharpness": {
      // PIL's SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]]/13 per channel; borders keep the original.
      const k = tf
        .tensor4d(
          [1, 1, 1, 1, 5, 1, 1, 1, 1].map((v) => v / 13),
          [3, 3, 1, 1],
        )
        .tile([1, 1, c, 1]);
      const smooth = tf.depthwiseConv2d(x, k as tf.Tensor4D, 1, "same");
      const inner = new Float32Array(h * w);
      for (let yy = 1; yy < h - 1; yy++) for (let xx = 1; xx < w - 1; xx++) inner[yy * w + xx] = 1;
      const m = tf.tensor4d(inner, [1, h, w, 1]);
      const base = tf.add(tf.mul(smooth, m), tf.mul(x, tf.sub(1, m)));
      return blend(base, x, perImage(signed(0.9).map((v) => 1 + v)));
    }
    case "Rotate":
    case "ShearX":
    case "ShearY":
    case "TranslateX":
    case "TranslateY": {
      // Inverse maps (output pixel → input pixel) about the image centre, one row of 8 per image.
      const t = new Float32Array(b * 8);
      const cx = (w - 1) / 2;
      const cy = (h - 1) / 2;
      for (let i = 0; i < b; i++) {
        const v = level[i] * sign[i];
        let a = [1, 0, 0, 0, 1, 0];
        if (op === "Rotate") {
          const th = (v * 30 * Math.PI) / 180;
          const cos = Math.cos(th);
          const sin = Math.sin(th);
          a = [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy];
        } else if (op === "ShearX") a = [1, v * 0.3, -v * 0.3 * cy, 0, 1, 0];
        else if (op === "ShearY") a = [1, 0, 0, v * 0.3, 1, -v * 0.3 * cx];
        else if (op === "TranslateX") a = [1, 0, v * 0.45 * w, 0, 1, 0];
        else a = [1, 0, 0, 0, 1, v * 0.45 * h];
        t.set([...a, 0, 0], i * 8);
      }
      return tf.image.transform(
        x,
        tf.tensor2d(t, [b, 8]),
        "bilinear",
        "constant",
        0.5,
      ) as tf.Tensor4D;
    }
  }
}
