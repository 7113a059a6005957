import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { maxAbsoluteError } from "@sit/testing";
import { describe, expect, it } from "vitest";
import type { Sample } from "../types";
import { adjustBrightness, adjustContrast, horizontalFlip } from "./color";
import { sampleResizedCrop } from "./geometry";
import { ColorJitter, RandomGaussianBlur, RandomHorizontalFlip, RandomSolarize } from "./ops";
import { RandomResizedCrop } from "./pipeline";
import { evalTransform, sitTwoViewTransform } from "./sit";

function samples(n: number, h: number, w: number, c: number, seed = 3): Sample[] {
  const rng = Rng.seed(seed);
  return Array.from({ length: n }, (_, i) => {
    const image = new Uint8Array(h * w * c);
    for (let k = 0; k < image.length; k++) image[k] = rng.int(0, 256);
    return { image, height: h, width: w, channels: c, label: i % 3 };
  });
}

describe("RandomResizedCrop sampling (torchvision's algorithm)", () => {
  it("area fraction and aspect ratio stay in range; area is ~uniform over the scale range", () => {
    const rrc = new RandomResizedCrop({ size: 32, scale: [0.2, 1], ratio: [3 / 4, 4 / 3] });
    const rng = Rng.seed(7);
    const H = 96;
    const W = 96;
    const fractions: number[] = [];
    for (let t = 0; t < 4000; t++) {
      const [b] = rrc.sampleBoxes(rng, [H], [W]);
      expect(b.top >= 0 && b.left >= 0 && b.top + b.height <= H && b.left + b.width <= W).toBe(
        true,
      );
      const f = (b.height * b.width) / (H * W);
      // Rounding each side to an integer moves the area by at most ~1 pixel row/column.
      expect(f).toBeGreaterThanOrEqual(0.2 - 2 / H);
      expect(f).toBeLessThanOrEqual(1);
      const r = b.width / b.height;
      expect(r).toBeGreaterThanOrEqual(3 / 4 - 0.05);
      expect(r).toBeLessThanOrEqual(4 / 3 + 0.05);
      fractions.push(f);
    }
    // Tries whose box does not fit are redrawn, which removes some large areas: the mean lies a
    // little under the untruncated 0.6, and every decile of the range is populated.
    const mean = fractions.reduce((a, b) => a + b, 0) / fractions.length;
    expect(mean).toBeGreaterThan(0.5);
    expect(mean).toBeLessThan(0.62);
    // Below an area of 0.56 every ratio of the range fits, so those deciles are uniform
    // (≈ 4000/8 each, a little more from the redraws); the top decile is the one thinned out.
    for (let d = 0; d < 8; d++) {
      const lo = 0.2 + d * 0.1;
      const count = fractions.filter((f) => f >= lo && f < lo + 0.1).length;
      if (d < 3) {
        expect(count).toBeGreaterThan(450);
        expect(count).toBeLessThan(650);
      } else expect(count).toBeGreaterThan(100);
    }
  });

  it("falls back to a ratio-clamped centre crop after 10 failed tries", () => {
    // Ratio 3…4 never fits a square image at scale ≥ 0.99: w = 32, h = round(32/3) = 11.
    expect(sampleResizedCrop(Rng.seed(1), 32, 32, [0.99, 1], [3, 4])).toEqual({
      top: 10,
      left: 0,
      height: 11,
      width: 32,
    });
    // Wide image 20×100 with ratio ≤ 2: h = 20, w = round(20·2) = 40, centred.
    expect(sampleResizedCrop(Rng.seed(1), 20, 100, [0.99, 1], [0.5, 2])).toEqual({
      top: 0,
      left: 30,
      height: 20,
      width: 40,
    });
  });
});

describe("random ops: rates, ranges and per-image application", () => {
  it("flip rate ≈ 0.5, and flipped images are exactly mirrored", () => {
    const flip = new RandomHorizontalFlip();
    const mask = flip.sample(Rng.seed(11), 20000);
    const rate = mask.filter(Boolean).length / mask.length;
    expect(Math.abs(rate - 0.5)).toBeLessThan(0.015);
    const x = tf.randomUniform([16, 5, 6, 3], 0, 1, "float32", 3) as tf.Tensor4D;
    const y = flip.apply(x, Rng.seed(5));
    const which = flip.sample(Rng.seed(5), 16);
    expect(which.some(Boolean) && !which.every(Boolean)).toBe(true);
    const mirrored = horizontalFlip(x);
    which.forEach((f, i) => {
      const expected = (f ? mirrored : x).slice([i], [1]);
      expect(maxAbsoluteError(y.slice([i], [1]), expected)).toBe(0);
    });
    tf.dispose([x, y, mirrored]);
  });

  it("jitter factors inside their ranges, applied with p, in uniformly random orders", () => {
    const jitter = new ColorJitter({
      brightness: 0.4,
      contrast: 0.4,
      saturation: 0.2,
      hue: 0.1,
      p: 0.8,
    });
    const n = 20000;
    const p = jitter.sample(Rng.seed(2), n);
    const inRange = (a: Float64Array, lo: number, hi: number) => a.every((v) => v >= lo && v <= hi);
    expect(inRange(p.brightness, 0.6, 1.4)).toBe(true);
    expect(inRange(p.contrast, 0.6, 1.4)).toBe(true);
    expect(inRange(p.saturation, 0.8, 1.2)).toBe(true);
    expect(inRange(p.hue, -0.1, 0.1)).toBe(true);
    const mean = (a: Float64Array) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean(p.brightness) - 1)).toBeLessThan(0.01);
    expect(Math.abs(mean(p.hue))).toBeLessThan(0.003);
    expect(Math.abs(p.applied.filter(Boolean).length / n - 0.8)).toBeLessThan(0.01);
    for (let op = 0; op < 4; op++) {
      const first = p.order.filter((o) => o[0] === op).length / n;
      expect(Math.abs(first - 0.25)).toBeLessThan(0.015);
    }
    expect(p.order.every((o) => [...o].sort().join() === "0,1,2,3")).toBe(true);
  });

  it("each jittered image gets its own factors in its own order", () => {
    const jitter = new ColorJitter({ brightness: 0.4, contrast: 0.4 });
    const x = tf.randomUniform([6, 4, 5, 3], 0, 1, "float32", 9) as tf.Tensor4D;
    const params = jitter.sample(Rng.seed(4), 6);
    params.applied[5] = false;
    const y = jitter.applyParams(x, params);
    for (let i = 0; i < 6; i++) {
      const xi = x.slice([i], [1]) as tf.Tensor4D;
      let expected = xi;
      if (params.applied[i]) {
        for (const op of params.order[i]) {
          if (op === 0) expected = adjustBrightness(expected, params.brightness[i]);
          if (op === 1) expected = adjustContrast(expected, params.contrast[i]);
        }
      }
      expect(maxAbsoluteError(y.slice([i], [1]), expected)).toBeLessThanOrEqual(1e-6);
    }
    tf.dispose([x, y]);
  });

  it("blur and solarize probabilities and σ range", () => {
    const blur = new RandomGaussianBlur({ sigma: [0.1, 2], p: 0.1 });
    const b = blur.sample(Rng.seed(8), 20000);
    expect(Math.abs(b.applied.filter(Boolean).length / 20000 - 0.1)).toBeLessThan(0.01);
    expect(b.sigma.every((s) => s >= 0.1 && s <= 2)).toBe(true);
    const sol = new RandomSolarize({ p: 0.2 }).sample(Rng.seed(8), 20000);
    expect(Math.abs(sol.filter(Boolean).length / 20000 - 0.2)).toBeLessThan(0.01);
  });
});

describe("SiT two-view and evaluation transforms", () => {
  it("shapes, normalisation, 1 → 3 channels, no tensor leaks", () => {
    const t = sitTwoViewTransform({ size: 28 });
    const before = tf.memory().numTensors;
    const [v1, v2] = t.apply(samples(4, 28, 28, 1), Rng.seed(1));
    expect(v1.shape).toEqual([4, 28, 28, 3]);
    expect(v2.shape).toEqual([4, 28, 28, 3]);
    const [min, max] = tf.tidy(() => [v1.min().dataSync()[0], v1.max().dataSync()[0]]);
    // ImageNet normalisation of [0, 1]: range [−2.12, 2.64].
    expect(min).toBeGreaterThanOrEqual(-0.485 / 0.229 - 1e-5);
    expect(max).toBeLessThanOrEqual((1 - 0.406) / 0.225 + 1e-5);
    tf.dispose([v1, v2]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("a seed fixes every augmentation; another seed changes them", () => {
    const t = sitTwoViewTransform({ size: 24, interpolation: "bilinear" });
    const data = samples(6, 32, 40, 3);
    const a = t.apply(data, Rng.seed(42));
    const b = t.apply(data, Rng.seed(42));
    const c = t.apply(data, Rng.seed(43));
    expect(maxAbsoluteError(a[0], b[0])).toBe(0);
    expect(maxAbsoluteError(a[1], b[1])).toBe(0);
    expect(maxAbsoluteError(a[0], c[0])).toBeGreaterThan(0.1);
    expect(maxAbsoluteError(a[0], a[1])).toBeGreaterThan(0.1);
    tf.dispose([...a, ...b, ...c]);
  });

  it("view 1 is always blurred: without blur or jitter it would be a plain crop", () => {
    // With jitter, grayscale and flip off, view 1 = blur(crop): its high-frequency energy drops.
    const t = sitTwoViewTransform({
      size: 32,
      colorJitter: { p: 0 },
      grayscaleP: 0,
      flipP: 0,
      solarizeP: 0,
      blurP: [1, 0],
      scale: [1, 1],
      ratio: [1, 1],
      normalize: null,
    });
    const [v1, v2] = t.apply(samples(3, 32, 32, 3), Rng.seed(0));
    const roughness = (v: tf.Tensor4D) =>
      tf.tidy(
        () =>
          v
            .slice([0, 0, 1], [-1, -1, -1])
            .sub(v.slice([0, 0, 0], [-1, -1, 31]))
            .abs()
            .mean()
            .dataSync()[0],
      );
    expect(roughness(v2)).toBeGreaterThan(0.2); // random pixels, unblurred
    expect(roughness(v1)).toBeLessThan(roughness(v2) * 0.9);
    tf.dispose([v1, v2]);
  });

  it("evaluation transform: deterministic resize + centre crop", () => {
    const t = evalTransform({ size: 24, normalize: null });
    const data = samples(2, 40, 30, 3);
    const [a] = t.apply(data, Rng.seed(1));
    const [b] = t.apply(data, Rng.seed(2));
    expect(a.shape).toEqual([2, 24, 24, 3]);
    expect(maxAbsoluteError(a, b)).toBe(0);
    tf.dispose([a, b]);
  });

  it("rejects bad options with named errors", () => {
    expect(() => sitTwoViewTransform({ scale: [0.5, 0.2] })).toThrow(/scale: expected low ≤ high/);
    expect(() => sitTwoViewTransform({ flipP: 2 })).toThrow(
      /p: expected a finite number in \[0, 1\]/,
    );
    expect(() => new ColorJitter({ hue: 0.7 })).toThrow(
      /hue: expected a finite number in \[0, 0.5\]/,
    );
    expect(() => new RandomResizedCrop({ size: 0 })).toThrow(/size\[0\]/);
  });
});
