import { ConfigError, type Rng, checkNumber, roundHalfEven } from "@sit/core";
import type { SampleRegion } from "./resample";

/** A crop box in pixels: rows `[top, top+height)`, columns `[left, left+width)`. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** Validate a `[low, high]` range with `0 < low ≤ high` (and `high ≤ max` when given). */
export function checkRange(
  name: string,
  range: readonly [number, number],
  opts: { min?: number; max?: number; positive?: boolean } = {},
): readonly [number, number] {
  if (!Array.isArray(range) || range.length !== 2)
    throw new ConfigError(`${name}: expected [low, high], got ${JSON.stringify(range)}`);
  const [lo, hi] = range;
  checkNumber(`${name}[0]`, lo, { min: opts.min, minExclusive: opts.positive });
  checkNumber(`${name}[1]`, hi, { min: opts.min, max: opts.max, minExclusive: opts.positive });
  if (lo > hi) throw new ConfigError(`${name}: expected low ≤ high, got ${JSON.stringify(range)}`);
  return range;
}

/**
 * torchvision's `RandomResizedCrop.get_params`: up to 10 tries of an area fraction
 * `U(scale)` and a log-uniform aspect ratio `ratio`; a try fits when the rounded box lies inside
 * the image; otherwise the fallback is a centre crop clamped to the ratio range.
 */
export function sampleResizedCrop(
  rng: Rng,
  height: number,
  width: number,
  scale: readonly [number, number] = [0.08, 1],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): CropBox {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(0, height - h + 1);
      const left = rng.int(0, width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(ratio[0], ratio[1])) h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  else if (inRatio > Math.max(ratio[0], ratio[1]))
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  return {
    top: Math.floor((height - h) / 2),
    left: Math.floor((width - w) / 2),
    height: h,
    width: w,
  };
}

/**
 * The sampling region of torchvision's `Resize(resize)` followed by `CenterCrop(crop)`:
 * the shorter side is resized to `resize` (the longer one to `floor(resize·long/short)`), then the
 * centre `crop` window is taken (offsets `round((resized − crop)/2)`).
 */
export function resizeCenterCropRegion(
  height: number,
  width: number,
  resize: number,
  crop: readonly [number, number],
): SampleRegion {
  checkNumber("resize", resize, { min: 1, integer: true });
  let rh: number;
  let rw: number;
  if (height <= width) {
    rh = resize;
    rw = Math.floor((resize * width) / height);
  } else {
    rw = resize;
    rh = Math.floor((resize * height) / width);
  }
  if (crop[0] > rh || crop[1] > rw)
    throw new ConfigError(
      `crop: expected a centre crop no larger than the resized ${rh}×${rw} image, got ${crop[0]}×${crop[1]}`,
    );
  return {
    top: 0,
    left: 0,
    height,
    width,
    resizedHeight: rh,
    resizedWidth: rw,
    offsetY: roundHalfEven((rh - crop[0]) / 2),
    offsetX: roundHalfEven((rw - crop[1]) / 2),
  };
}
