import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng } from "@sit/core";
import { TEST_BACKENDS, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { mixBatch, sampleBeta, smoothOneHot } from "./mixup";
import { type RandAugmentOp, randAugment } from "./rand-augment";

const arr = (t: tf.Tensor) => Array.from(t.dataSync());

describe("mixup / CutMix", () => {
  it("Beta(α, α) draws have the right mean and variance", () => {
    const rng = Rng.seed(1);
    for (const a of [0.8, 1, 2]) {
      const n = 20000;
      const xs = Array.from({ length: n }, () => sampleBeta(rng, a, a));
      const mean = xs.reduce((s, x) => s + x, 0) / n;
      const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
      expect(mean).toBeCloseTo(0.5, 1);
      expect(Math.abs(variance - 1 / (4 * (2 * a + 1)))).toBeLessThan(0.006);
    }
  });

  it("smooths one-hot targets as timm: 1 − ε + ε/C on the class, ε/C elsewhere", () => {
    const t = smoothOneHot(tf.tensor1d([2, 0], "int32"), 4, 0.1);
    expect(arr(t)).toEqual(
      [0.025, 0.025, 0.925, 0.025, 0.925, 0.025, 0.025, 0.025].map((v) => expect.closeTo(v, 6)),
    );
    t.dispose();
  });

  it("smoothOneHot is right on every backend (wasm's OneHot kernel mangles float on/off values)", async () => {
    for (const backend of TEST_BACKENDS)
      await withBackend(backend, () => {
        const labels = tf.tensor1d([2, 0], "int32");
        const smooth = smoothOneHot(labels, 4, 0.1);
        const plain = smoothOneHot(labels, 4, 0);
        expect(smooth.dtype).toBe("float32");
        expect(arr(smooth), backend).toEqual(
          [0.025, 0.025, 0.925, 0.025, 0.925, 0.025, 0.025, 0.025].map((v) => expect.closeTo(v, 6)),
        );
        // Exactly 1 and 0 (tf.oneHot(…, 1, 0, "float32") gives 1.4e-45 on wasm: int 1's bits).
        expect(arr(plain), backend).toEqual([0, 0, 1, 0, 1, 0, 0, 0]);
        tf.dispose([labels, smooth, plain]);
      });
  });

  it("mixup blends each image and target with the reversed batch using one λ", () => {
    // Three 2×2×1 images of constant value 0, 1, 2; partners are images 2, 1, 0.
    const images = tf.tensor4d([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [3, 2, 2, 1]);
    const targets = tf.tensor2d([1, 0, 0, 0, 1, 0, 0, 0, 1], [3, 3]);
    const before = tf.memory().numTensors;
    const out = mixBatch(images, targets, Rng.seed(5), { cutmixAlpha: 0 });
    expect(out.info.kind).toBe("mixup");
    const l = out.info.lambda;
    expect(l).toBeGreaterThan(0);
    expect(l).toBeLessThan(1);
    expect(arr(out.images)).toEqual(
      [2 * (1 - l), 1, 2 * l].flatMap((v) => [v, v, v, v]).map((v) => expect.closeTo(v, 6)),
    );
    expect(arr(out.targets)).toEqual(
      [l, 0, 1 - l, 0, 1, 0, 1 - l, 0, l].map((v) => expect.closeTo(v, 6)),
    );
    tf.dispose([out.images, out.targets]);
    expect(tf.memory().numTensors).toBe(before);
    const same = mixBatch(images, targets, Rng.seed(5), { cutmixAlpha: 0 });
    expect(same.info.lambda).toBe(l); // deterministic per seed
    tf.dispose([same.images, same.targets]);
    const none = mixBatch(images, targets, Rng.seed(5), { prob: 0 });
    expect(none.info.kind).toBe("none");
    expect(arr(none.images)).toEqual(arr(images));
    tf.dispose([none.images, none.targets, images, targets]);
  });

  it("CutMix pastes the partner's box and sets λ to the box's exact area", () => {
    const h = 8;
    const w = 6;
    const images = tf.concat([tf.zeros([1, h, w, 1]), tf.ones([1, h, w, 1])]) as tf.Tensor4D;
    const targets = tf.tensor2d([1, 0, 0, 1], [2, 2]);
    for (let seed = 0; seed < 5; seed++) {
      const out = mixBatch(images, targets, Rng.seed(seed), { mixupAlpha: 0 });
      expect(out.info.kind).toBe("cutmix");
      const [y0, y1, x0, x1] = out.info.box!;
      const area = (y1 - y0) * (x1 - x0);
      expect(out.info.lambda).toBeCloseTo(1 - area / (h * w), 12);
      const first = arr(out.images).slice(0, h * w); // image 0 (zeros) with image 1's box (ones)
      first.forEach((v, i) => {
        const y = Math.floor(i / w);
        const x = i % w;
        expect(v).toBe(y >= y0 && y < y1 && x >= x0 && x < x1 ? 1 : 0);
      });
      expect(arr(out.targets)[0]).toBeCloseTo(out.info.lambda, 6);
      tf.dispose([out.images, out.targets]);
    }
    tf.dispose([images, targets]);
  });
});

describe("randAugment (timm's inc1 set without Equalize)", () => {
  // One 4×5 RGB image with values in [0.2, 0.6] (channel c adds 0.1·c).
  const base = Float32Array.from(
    { length: 4 * 5 * 3 },
    (_, i) => 0.2 + 0.01 * (Math.floor(i / 3) % 20) + 0.1 * (i % 3),
  );
  const image = () => tf.tensor4d(base, [1, 4, 5, 3]);
  const one = (op: RandAugmentOp, magnitude: number, seed = 1) => {
    const x = image();
    const y = randAugment(x, Rng.seed(seed), {
      ops: [op],
      numOps: 1,
      magnitude,
      magnitudeStd: 0,
      prob: 1,
    });
    const out = arr(y);
    tf.dispose([x, y]);
    return out;
  };
  const close = (v: number[]) => v.map((e) => expect.closeTo(e, 5));

  it("pixel ops at a given magnitude match their definitions", () => {
    expect(one("Invert", 5)).toEqual(close(Array.from(base, (v) => 1 - v)));
    // Solarize at level 0.6: pixels ≥ 0.4 are inverted.
    expect(one("Solarize", 6)).toEqual(close(Array.from(base, (v) => (v >= 0.4 ? 1 - v : v))));
    // SolarizeAdd at level 1: +110/255 below 0.5.
    expect(one("SolarizeAdd", 10)).toEqual(
      close(Array.from(base, (v) => (v < 0.5 ? Math.min(1, v + 110 / 255) : v))),
    );
    // Posterize at level 0.5: 4 − 2 = 2 bits → multiples of 64/255.
    expect(one("Posterize", 5)).toEqual(
      close(Array.from(base, (v) => (Math.floor(Math.round(v * 255) / 64) * 64) / 255)),
    );
    // Brightness at level 0.5: factor 1 ± 0.45.
    const bright = one("Brightness", 5);
    const factor = bright[0] / base[0];
    expect([0.55, 1.45].some((f) => Math.abs(f - factor) < 1e-5)).toBe(true);
    expect(bright).toEqual(close(Array.from(base, (v) => Math.min(1, v * factor))));
    // AutoContrast stretches each channel's [min, max] to [0, 1].
    const ac = one("AutoContrast", 0);
    for (let c = 0; c < 3; c++) {
      const ch = ac.filter((_, i) => i % 3 === c);
      expect(Math.min(...ch)).toBeCloseTo(0, 6);
      expect(Math.max(...ch)).toBeCloseTo(1, 6);
    }
  });

  it("Color leaves a grey image alone; Contrast keeps the mean grey level", () => {
    const grey = tf.fill([1, 3, 3, 3], 0.3) as tf.Tensor4D;
    const y = randAugment(grey, Rng.seed(2), {
      ops: ["Color"],
      numOps: 1,
      magnitude: 9,
      magnitudeStd: 0,
      prob: 1,
    });
    expect(arr(y)).toEqual(close(new Array(27).fill(0.3)));
    const c = one("Contrast", 5);
    const lum = (v: number[]) => {
      let s = 0;
      for (let i = 0; i < v.length; i += 3) s += 0.299 * v[i] + 0.587 * v[i + 1] + 0.114 * v[i + 2];
      return s / (v.length / 3);
    };
    expect(lum(c)).toBeCloseTo(lum(Array.from(base)), 5);
    tf.dispose([grey, y]);
  });

  it("TranslateX shifts by 0.45·level of the width (here one pixel) and fills with grey", () => {
    // Width 5 → level 1/2.25 gives 0.45 · 5 / 2.25 = 1 pixel.
    const t = one("TranslateX", 10 / 2.25);
    const at = (v: number[], y: number, x: number, c: number) => v[(y * 5 + x) * 3 + c];
    const b = Array.from(base);
    const left = at(t, 0, 0, 0) === 0.5; // moved right: column 0 is fill
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 5; x++) {
        const src = left ? x - 1 : x + 1;
        const want = src < 0 || src > 4 ? 0.5 : at(b, y, src, 1);
        expect(at(t, y, x, 1)).toBeCloseTo(want, 5);
      }
  });

  it("applies ops with probability `prob`, deterministically per seed, without leaks", () => {
    const x = tf.tensor4d(
      Float32Array.from({ length: 6 * 8 * 8 * 3 }, (_, i) => (i % 97) / 97),
      [6, 8, 8, 3],
    );
    const before = tf.memory().numTensors;
    const a = randAugment(x, Rng.seed(3));
    const b = randAugment(x, Rng.seed(3));
    const c = randAugment(x, Rng.seed(4));
    const id = randAugment(x, Rng.seed(3), { prob: 0 });
    expect(arr(a)).toEqual(arr(b));
    expect(arr(a)).not.toEqual(arr(c));
    expect(arr(id)).toEqual(arr(x));
    const y = arr(a);
    expect(y.every((v) => v >= 0 && v <= 1)).toBe(true);
    tf.dispose([a, b, c, id]);
    expect(tf.memory().numTensors).toBe(before);
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong input
    expect(() => randAugment(x, Rng.seed(1), { ops: ["Equalize" as any] })).toThrow(ConfigError);
    x.dispose();
  });
});
