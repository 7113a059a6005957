import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { describe, expect, it } from "vitest";
import { type GmmlMaskingResult, GmmlMasker, replaceFromBatch } from "./index";

function colourBatch(
  B: number,
  H: number,
  W: number,
  C = 3,
  seed = 0,
): { data: Float32Array; shape: [number, number, number, number] } {
  const rng = Rng.seed(seed + 77);
  const data = new Float32Array(B * H * W * C);
  // Never exactly 0, so that a zero in the output can only come from the fill.
  for (let i = 0; i < data.length; i++)
    data[i] = rng.uniform(0.25, 2) * (rng.bernoulli(0.5) ? 1 : -1);
  return { data, shape: [B, H, W, C] };
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

/** Whether `count` values of `a` from `aFrom` equal those of `b` from `bFrom`, bit for bit. */
function sameBitsAt(
  a: Uint32Array,
  aFrom: number,
  b: Uint32Array,
  bFrom: number,
  count: number,
): boolean {
  for (let i = 0; i < count; i++) if (a[aFrom + i] !== b[bFrom + i]) return false;
  return true;
}

/** Fast bit-wise equality of two float arrays (vitest's deep equality is slow on large arrays). */
function expectSameBits(a: Float32Array, b: Float32Array, label = "values"): void {
  expect(a.length, label).toBe(b.length);
  const x = bits(a);
  const y = bits(b);
  let first = -1;
  for (let i = 0; i < x.length && first < 0; i++) if (x[i] !== y[i]) first = i;
  expect(first, `${label}: first differing index`).toBe(-1);
}

function sameBits(a: Uint32Array, b: Uint32Array, from: number, count: number): boolean {
  return sameBitsAt(a, from, b, from, count);
}

describe("GMML fills", () => {
  const B = 6;
  const H = 32;
  const W = 32;
  const C = 3;

  it("zeros: masked pixels are exactly +0 on every channel, the rest byte-identical", () => {
    for (let seed = 0; seed < 30; seed++) {
      const clean = colourBatch(B, H, W, C, seed);
      const original = clean.data.slice();
      const result = new GmmlMasker({ fill: "zeros", replaceProb: 0 }).apply(clean, Rng.seed(seed));
      expectSameBits(clean.data, original); // input untouched
      const out = bits(result.corrupted.data);
      const inp = bits(clean.data);
      let masked = 0;
      for (let p = 0; p < B * H * W; p++) {
        if (result.pixelMask.data[p]) {
          masked++;
          for (let c = 0; c < C; c++)
            if (out[p * C + c] !== 0) throw new Error(`seed ${seed}: pixel ${p} not +0`);
        } else if (!sameBits(out, inp, p * C, C))
          throw new Error(`seed ${seed}: kept pixel ${p} changed`);
      }
      expect(masked / (B * H * W)).toBeGreaterThanOrEqual(0.5);
    }
  });

  it("noise: masked pixels are fresh N(0, 1) draws, the rest byte-identical", () => {
    const values: number[] = [];
    for (let seed = 0; seed < 20; seed++) {
      const clean = colourBatch(B, H, W, C, seed);
      const result = new GmmlMasker({ fill: "noise", replaceProb: 0 }).apply(clean, Rng.seed(seed));
      const out = bits(result.corrupted.data);
      const inp = bits(clean.data);
      for (let p = 0; p < B * H * W; p++) {
        if (result.pixelMask.data[p]) {
          for (let c = 0; c < C; c++) {
            const v = result.corrupted.data[p * C + c];
            if (v === clean.data[p * C + c]) throw new Error(`seed ${seed}: masked value kept`);
            values.push(v);
          }
        } else if (!sameBits(out, inp, p * C, C))
          throw new Error(`seed ${seed}: kept pixel ${p} changed`);
      }
    }
    const n = values.length;
    const mean = values.reduce((s, v) => s + v, 0) / n;
    const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    const beyond2 = values.filter((v) => Math.abs(v) > 2).length / n;
    expect(Math.abs(mean)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(variance - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    // P(|Z| > 2) = 0.0455 for a normal; the uniform input in ±[0.25, 2] has none.
    expect(Math.abs(beyond2 - 0.0455)).toBeLessThan(5 * Math.sqrt((0.0455 * 0.9545) / n));
  });

  it("shuffle: each block is a copy of a same-size block of the image as it was at that moment", () => {
    for (let seed = 0; seed < 30; seed++) {
      const clean = colourBatch(B, H, W, C, seed);
      const result = new GmmlMasker({ fill: "shuffle", replaceProb: 0 }).apply(
        clean,
        Rng.seed(seed),
      );
      // Replay every copy in order, on a plain copy of the input.
      const replay = clean.data.slice();
      result.images.forEach((rec, i) => {
        expect(rec.fill).toBe("shuffle");
        for (const b of rec.blocks) {
          expect(b.sourceRow).toBeDefined();
          const src = [] as number[];
          for (let y = 0; y < b.height; y++)
            for (let x = 0; x < b.width; x++)
              for (let c = 0; c < C; c++)
                src.push(replay[((i * H + b.sourceRow! + y) * W + b.sourceCol! + x) * C + c]);
          let k = 0;
          for (let y = 0; y < b.height; y++)
            for (let x = 0; x < b.width; x++)
              for (let c = 0; c < C; c++)
                replay[((i * H + b.row + y) * W + b.col + x) * C + c] = src[k++];
        }
      });
      expectSameBits(result.corrupted.data, replay);
    }
  });

  it("a list of fills picks one per image, uniformly", () => {
    const counts: Record<string, number> = { zeros: 0, noise: 0, shuffle: 0 };
    const masker = new GmmlMasker({ fill: ["zeros", "noise", "shuffle"], replaceProb: 0 });
    const rng = Rng.seed(5);
    for (let i = 0; i < 20; i++)
      for (const rec of masker.apply(colourBatch(30, 16, 16), rng).images) counts[rec.fill!]++;
    for (const k of Object.keys(counts))
      expect(Math.abs(counts[k] / 600 - 1 / 3), k).toBeLessThan(0.07);
  });
});

describe("batch replacement (§3.3)", () => {
  const B = 8;
  const H = 32;
  const W = 32;
  const C = 3;

  function checkReplacement(result: GmmlMaskingResult, clean: Float32Array, label: string): number {
    const out = bits(result.corrupted.data);
    const inp = bits(clean);
    let replaced = 0;
    result.images.forEach((rec, i) => {
      if (rec.kind !== "replacement") return;
      replaced++;
      const j = rec.partner!;
      for (let p = 0; p < H * W; p++) {
        const at = (i * H * W + p) * C;
        const partner = (j * H * W + p) * C;
        const ok = result.pixelMask.data[i * H * W + p]
          ? sameBitsAt(out, at, inp, partner, C) // the partner's clean pixel, same place
          : sameBits(out, inp, at, C); // the image's own clean pixel
        if (!ok) throw new Error(`${label}: image ${i} pixel ${p} (partner ${j})`);
      }
      // Exactly replaceRatio of the clean crop is the target (r ≤ 0.5: no random range).
      expect(rec.target).toBe(0.3 * H * W);
      expect(rec.covered).toBeGreaterThanOrEqual(rec.target);
    });
    return replaced;
  }

  it("copies the partner's clean pixels at the same positions, starting from the clean image", () => {
    for (let seed = 0; seed < 30; seed++) {
      const clean = colourBatch(B, H, W, C, seed);
      const result = new GmmlMasker({ replaceProb: 1 }).apply(clean, Rng.seed(seed));
      expect(checkReplacement(result, clean.data, `seed ${seed}`)).toBe(B);
    }
  });

  it("happens with probability replaceProb; partners are uniform and may be the image itself", () => {
    let replaced = 0;
    let self = 0;
    let total = 0;
    const masker = new GmmlMasker();
    const rng = Rng.seed(11);
    for (let call = 0; call < 60; call++) {
      const clean = colourBatch(B, H, W, C, call);
      const result = masker.apply(clean, rng);
      replaced += checkReplacement(result, clean.data, `call ${call}`);
      for (const [i, rec] of result.images.entries()) {
        if (rec.kind === "replacement" && rec.partner === i) self++;
        if (rec.kind === "blocks") expect(rec.fill).toBe("zeros");
      }
      total += B;
    }
    expect(Math.abs(replaced / total - 0.5)).toBeLessThan(4.5 * Math.sqrt(0.25 / total));
    // j = i with probability 1/B among replacements.
    expect(Math.abs(self / replaced - 1 / B)).toBeLessThan(
      4.5 * Math.sqrt(((1 / B) * (1 - 1 / B)) / replaced),
    );
  });

  it("excludeSelf never picks the image itself", () => {
    const masker = new GmmlMasker({ replaceProb: 1, excludeSelf: true });
    const rng = Rng.seed(3);
    const seen = new Set<number>();
    for (let call = 0; call < 40; call++) {
      const clean = colourBatch(3, 16, 16, 1, call);
      for (const [i, rec] of masker.apply(clean, rng).images.entries()) {
        expect(rec.partner).not.toBe(i);
        seen.add(rec.partner!);
      }
    }
    expect([...seen].sort()).toEqual([0, 1, 2]);
  });

  it("replaceFromBatch applies the step to views corrupted elsewhere", () => {
    const clean = colourBatch(B, H, W, C, 1);
    const first = new GmmlMasker({ replaceProb: 0 }).apply(clean, Rng.seed(1));
    const kept = replaceFromBatch(clean, first, Rng.seed(2), { replaceProb: 0 });
    expectSameBits(kept.corrupted.data, first.corrupted.data);
    expect(kept.pixelMask.data).toEqual(first.pixelMask.data);
    const all = replaceFromBatch(clean, first, Rng.seed(2), { replaceProb: 1 });
    const inp = bits(clean.data);
    const out = bits(all.corrupted.data);
    for (let i = 0; i < B; i++) {
      const j = all.partners[i];
      expect(j).toBeGreaterThanOrEqual(0);
      for (let p = 0; p < H * W; p++) {
        const at = (i * H * W + p) * C;
        const src = all.pixelMask.data[i * H * W + p] ? (j * H * W + p) * C : at;
        if (!sameBitsAt(out, at, inp, src, C)) throw new Error(`image ${i} pixel ${p}`);
      }
    }
    expect(() => replaceFromBatch(colourBatch(1, H, W), first, Rng.seed(0))).toThrow(
      /previous.corrupted: expected shape/,
    );
  });
});

describe("determinism and inputs", () => {
  it("the same seed gives the same masks and images; another seed does not", () => {
    const clean = colourBatch(8, 32, 32);
    for (const fill of ["zeros", "noise", "shuffle"] as const) {
      const m = new GmmlMasker({ fill, patchSize: 8 });
      const a = m.apply(clean, Rng.seed(42));
      const b = new GmmlMasker({ fill, patchSize: 8 }).apply(clean, Rng.seed(42));
      const c = m.apply(clean, Rng.seed(43));
      expect(a.pixelMask.data).toEqual(b.pixelMask.data);
      expectSameBits(a.corrupted.data, b.corrupted.data);
      expect(a.tokenMask!.fraction).toEqual(b.tokenMask!.fraction);
      expect(a.pixelMask.data).not.toEqual(c.pixelMask.data);
    }
  });

  it("a tensor input gives the same result as its typed array; `out` buffers are reused", () => {
    const clean = colourBatch(4, 16, 16);
    const t = tf.tensor4d(clean.data, clean.shape);
    const m = new GmmlMasker({ fill: "noise" });
    const fromTensor = m.apply(t, Rng.seed(9));
    const fromArray = m.apply(clean, Rng.seed(9));
    expectSameBits(fromTensor.corrupted.data, fromArray.corrupted.data);
    const again = m.apply(clean, Rng.seed(9), fromTensor);
    expect(again.corrupted.data).toBe(fromTensor.corrupted.data);
    expectSameBits(again.corrupted.data, fromArray.corrupted.data);
    expect(again.pixelMask.data).toEqual(fromArray.pixelMask.data);
    expect(() => m.apply(clean, Rng.seed(9), { corrupted: new Float32Array(3) })).toThrow(
      /out.corrupted: expected a Float32Array of 3072 values/,
    );
    expect(() => m.apply(clean, Rng.seed(9), { corrupted: clean.data })).toThrow(
      /out.corrupted: expected an array that does not share memory/,
    );
    t.dispose();
  });

  it("token masks: fraction of each patch, thresholded", () => {
    const clean = colourBatch(4, 32, 32);
    const r = new GmmlMasker({ patchSize: 8, tokenThreshold: 0.25 }).apply(clean, Rng.seed(1));
    const tm = r.tokenMask!;
    expect(tm.shape).toEqual([4, 16]);
    for (let b = 0; b < 4; b++)
      for (let t = 0; t < 16; t++) {
        let n = 0;
        for (let y = 0; y < 8; y++)
          for (let x = 0; x < 8; x++)
            n += r.pixelMask.data[(b * 32 + Math.floor(t / 4) * 8 + y) * 32 + (t % 4) * 8 + x];
        expect(tm.fraction[b * 16 + t]).toBeCloseTo(n / 64, 7);
        expect(tm.mask[b * 16 + t]).toBe(n / 64 >= 0.25 ? 1 : 0);
      }
    expect(() => new GmmlMasker({ patchSize: 7 }).apply(clean, Rng.seed(1))).toThrow(
      /patchSize: expected a divisor of the image size 32×32, got 7/,
    );
  });
});
