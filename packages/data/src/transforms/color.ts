import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber } from "@sit/core";

/**
 * Colour operations on NHWC float32 batches in [0, 1], with torchvision's tensor semantics
 * (`torchvision.transforms.functional`): every blend is clamped to [0, 1]; grayscale uses
 * ITU-R 601 luma weights (0.2989, 0.587, 0.114); contrast blends towards the mean of that luma
 * per image; hue rotates in HSV. A factor is one number for the whole batch or one per image.
 * One-channel images are supported: saturation and hue leave them unchanged (as torchvision).
 */
export type Factors = number | ArrayLike<number>;

function perImage(name: string, factors: Factors, batch: number): tf.Tensor4D {
  if (typeof factors === "number") {
    checkNumber(name, factors);
    return tf.fill([batch, 1, 1, 1], factors) as tf.Tensor4D;
  }
  if (factors.length !== batch)
    throw new ShapeError(
      `${name}: expected ${batch} factors (one per image), got ${factors.length}`,
    );
  return tf.tensor4d(Float32Array.from(factors), [batch, 1, 1, 1]);
}

function checkImages(name: string, x: tf.Tensor): void {
  if (x.rank !== 4 || (x.shape[3] !== 1 && x.shape[3] !== 3))
    throw new ShapeError(`${name}: expected NHWC images with 1 or 3 channels, got [${x.shape}]`);
}

/** `clamp(f·a + (1−f)·b, 0, 1)` (torchvision `_blend`). */
function blend(a: tf.Tensor, b: tf.Tensor, f: tf.Tensor): tf.Tensor4D {
  return f.mul(a).add(tf.scalar(1).sub(f).mul(b)).clipByValue(0, 1) as tf.Tensor4D;
}

/** Luma of RGB images, keeping a channel axis: [B,H,W,3] → [B,H,W,1]; 1-channel input is returned as is. */
export function rgbToLuma(x: tf.Tensor4D): tf.Tensor4D {
  checkImages("x", x);
  if (x.shape[3] === 1) return x.clone();
  return tf.tidy(() => {
    const [r, g, b] = tf.split(x, 3, 3);
    return r.mul(0.2989).add(g.mul(0.587)).add(b.mul(0.114)) as tf.Tensor4D;
  });
}

/** Grayscale with `channels` output channels (1, or 3 identical ones) (torchvision `rgb_to_grayscale`). */
export function grayscale(x: tf.Tensor4D, channels: 1 | 3 = 3): tf.Tensor4D {
  return tf.tidy(() => {
    const luma = rgbToLuma(x);
    return channels === 3 ? (tf.tile(luma, [1, 1, 1, 3]) as tf.Tensor4D) : luma;
  });
}

/** Brightness: `clamp(f·x, 0, 1)`; f = 1 is the identity. */
export function adjustBrightness(x: tf.Tensor4D, factors: Factors): tf.Tensor4D {
  checkImages("x", x);
  return tf.tidy(() => blend(x, tf.zerosLike(x), perImage("factors", factors, x.shape[0])));
}

/** Contrast: blend with the mean luma of each image; f = 1 is the identity. */
export function adjustContrast(x: tf.Tensor4D, factors: Factors): tf.Tensor4D {
  checkImages("x", x);
  return tf.tidy(() => {
    const mean = rgbToLuma(x).mean([1, 2, 3], true);
    return blend(x, mean, perImage("factors", factors, x.shape[0]));
  });
}

/** Saturation: blend with the luma image; f = 0 gives grayscale, f = 1 the identity. */
export function adjustSaturation(x: tf.Tensor4D, factors: Factors): tf.Tensor4D {
  checkImages("x", x);
  if (x.shape[3] === 1) return x.clone();
  return tf.tidy(() => blend(x, rgbToLuma(x), perImage("factors", factors, x.shape[0])));
}

/** RGB → HSV, all in [0, 1] (torchvision `_rgb2hsv`); returns [h, s, v] each [B,H,W,1]. */
export function rgbToHsv(x: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
  return tf.tidy(() => {
    const [r, g, b] = tf.split(x, 3, 3);
    const maxc = tf.maximum(tf.maximum(r, g), b);
    const minc = tf.minimum(tf.minimum(r, g), b);
    const eqc = tf.equal(maxc, minc);
    const cr = maxc.sub(minc);
    const ones = tf.onesLike(maxc);
    const s = cr.div(tf.where(eqc, ones, maxc));
    const crDivisor = tf.where(eqc, ones, cr);
    const rc = maxc.sub(r).div(crDivisor);
    const gc = maxc.sub(g).div(crDivisor);
    const bc = maxc.sub(b).div(crDivisor);
    const isR = tf.equal(maxc, r);
    const isG = tf.logicalAnd(tf.equal(maxc, g), tf.logicalNot(isR));
    const isB = tf.logicalAnd(tf.notEqual(maxc, g), tf.logicalNot(isR));
    const hr = isR.cast("float32").mul(bc.sub(gc));
    const hg = isG.cast("float32").mul(rc.sub(bc).add(2));
    const hb = isB.cast("float32").mul(gc.sub(rc).add(4));
    const h = tf.mod(hr.add(hg).add(hb).div(6).add(1), 1);
    return [h, s, maxc] as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  });
}

/** HSV → RGB (torchvision `_hsv2rgb`): [B,H,W,1] ×3 → [B,H,W,3]. */
export function hsvToRgb(h: tf.Tensor4D, s: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const h6 = h.mul(6);
    const i = tf.floor(h6);
    const f = h6.sub(i);
    const sector = tf.mod(i, 6);
    const p = v.mul(tf.scalar(1).sub(s)).clipByValue(0, 1);
    const q = v.mul(tf.scalar(1).sub(s.mul(f))).clipByValue(0, 1);
    const t = v.mul(tf.scalar(1).sub(s.mul(tf.scalar(1).sub(f)))).clipByValue(0, 1);
    const masks = [0, 1, 2, 3, 4, 5].map((k) => tf.equal(sector, k).cast("float32"));
    const pick = (choices: tf.Tensor[]): tf.Tensor =>
      tf.addN(choices.map((c, k) => masks[k].mul(c)));
    const r = pick([v, q, p, p, t, v]);
    const g = pick([t, v, v, q, p, p]);
    const b = pick([p, p, t, v, v, q]);
    return tf.concat([r, g, b], 3) as tf.Tensor4D;
  });
}

/** Hue: rotate the hue by `f` turns, f ∈ [−0.5, 0.5]; f = 0 is (up to rounding) the identity. */
export function adjustHue(x: tf.Tensor4D, factors: Factors): tf.Tensor4D {
  checkImages("x", x);
  if (typeof factors === "number") checkNumber("factors", factors, { min: -0.5, max: 0.5 });
  else
    for (let i = 0; i < factors.length; i++)
      checkNumber(`factors[${i}]`, factors[i], { min: -0.5, max: 0.5 });
  if (x.shape[3] === 1) return x.clone();
  return tf.tidy(() => {
    const [h, s, v] = rgbToHsv(x);
    const shifted = tf.mod(h.add(perImage("factors", factors, x.shape[0])), 1) as tf.Tensor4D;
    return hsvToRgb(shifted, s, v);
  });
}

/** Solarize: pixels ≥ threshold become 1 − x (torchvision `solarize` on float images). */
export function solarize(x: tf.Tensor4D, threshold: number): tf.Tensor4D {
  checkImages("x", x);
  checkNumber("threshold", threshold);
  return tf.tidy(
    () => tf.where(tf.greaterEqual(x, threshold), tf.scalar(1).sub(x), x) as tf.Tensor4D,
  );
}

/** Horizontal flip of every image (torchvision `hflip`). */
export function horizontalFlip(x: tf.Tensor4D): tf.Tensor4D {
  if (x.rank !== 4) throw new ShapeError(`x: expected NHWC images, got [${x.shape}]`);
  return tf.reverse(x, 2);
}
