import { Rng } from "@sit/core";
import { describe, expect, it } from "vitest";
import {
  BlockwiseMasker,
  RandomTokenMasker,
  blockwiseTokenMask,
  pixelToTokenMask,
  randomTokenMask,
  tokenToPixelMask,
} from "./index";

function batch(
  B: number,
  size: number,
): { data: Float32Array; shape: [number, number, number, number] } {
  const data = new Float32Array(B * size * size * 3).fill(0.5);
  return { data, shape: [B, size, size, 3] };
}

function count(mask: Uint8Array, from = 0, n = mask.length): number {
  let c = 0;
  for (let i = from; i < from + n; i++) c += mask[i];
  return c;
}

describe("random-token masking (MAE)", () => {
  it("masks exactly N − int(N·(1 − r)) tokens per image, uniformly", () => {
    // MAE keeps int(196 · 0.25) = 49 of 196 tokens, and int(64 · 0.4) = 25 of 64.
    for (const [N, ratio, masked] of [
      [196, 0.75, 147],
      [64, 0.6, 39],
      [16, 1, 16],
    ]) {
      const rng = Rng.seed(N);
      const hits = new Float64Array(N);
      const draws = 2000;
      for (let i = 0; i < draws; i++) {
        const m = randomTokenMask(rng, N, ratio);
        expect(count(m)).toBe(masked);
        for (let t = 0; t < N; t++) hits[t] += m[t];
      }
      const p = masked / N;
      const sd = Math.sqrt((p * (1 - p)) / draws);
      for (let t = 0; t < N; t++)
        expect(Math.abs(hits[t] / draws - p)).toBeLessThanOrEqual(5 * sd + 1e-12);
    }
  });

  it("RandomTokenMasker fills masked patches with zeros and reports the token mask", () => {
    const r = new RandomTokenMasker({ patchSize: 8 }).apply(batch(3, 32), Rng.seed(1));
    expect(r.tokenMask!.shape).toEqual([3, 16]);
    for (let b = 0; b < 3; b++) expect(count(r.tokenMask!.mask, b * 16, 16)).toBe(12);
    expect(r.pixelMask.data).toEqual(tokenToPixelMask(r.tokenMask!.mask, [4, 4], 8).data);
    for (let p = 0; p < 3 * 32 * 32; p++) {
      const v = r.corrupted.data[p * 3];
      expect(v).toBe(r.pixelMask.data[p] ? 0 : 0.5);
    }
    expect(() => new RandomTokenMasker({ ratio: 0 })).toThrow(
      /ratio: expected a finite number in \(0, 1\]/,
    );
    expect(() => new RandomTokenMasker({ patchSize: 5 }).apply(batch(1, 32), Rng.seed(0))).toThrow(
      /patchSize/,
    );
  });
});

describe("block-wise masking (BEiT)", () => {
  it("masks exactly round(r·N) tokens per image, in blocks", () => {
    const rng = Rng.seed(4);
    let withNeighbour = 0;
    let total = 0;
    for (let i = 0; i < 300; i++) {
      const m = blockwiseTokenMask(rng, 14, 14, { ratio: 0.4 });
      expect(count(m)).toBe(78); // round(0.4 · 196) = round(78.4)
      for (let y = 0; y < 14; y++)
        for (let x = 0; x < 14; x++) {
          if (!m[y * 14 + x]) continue;
          total++;
          const n = (yy: number, xx: number) =>
            yy >= 0 && yy < 14 && xx >= 0 && xx < 14 && m[yy * 14 + xx] === 1;
          if (n(y - 1, x) && n(y + 1, x)) withNeighbour++;
          else if (n(y, x - 1) && n(y, x + 1)) withNeighbour++;
        }
    }
    // In blocks of ≥ 16 tokens most masked tokens lie between two masked neighbours (in a row or a
    // column); in a uniformly random 40% mask only about 1 − (1 − 0.4²)² ≈ 0.29 of them do.
    expect(withNeighbour / total).toBeGreaterThan(0.6);
  });

  it("without `exact`, BEiT's loop never exceeds the target", () => {
    const rng = Rng.seed(5);
    for (let i = 0; i < 200; i++)
      expect(
        count(blockwiseTokenMask(rng, 8, 8, { ratio: 0.5, exact: false })),
      ).toBeLessThanOrEqual(32);
    for (let i = 0; i < 200; i++)
      expect(count(blockwiseTokenMask(rng, 8, 8, { ratio: 0.5 }))).toBe(32);
  });

  it("BlockwiseMasker and its checks", () => {
    const r = new BlockwiseMasker({ patchSize: 16 }).apply(batch(2, 224), Rng.seed(2));
    expect(r.tokenMask!.shape).toEqual([2, 196]);
    expect(count(r.tokenMask!.mask, 0, 196)).toBe(78);
    expect(count(r.pixelMask.data, 0, 224 * 224)).toBe(78 * 256);
    expect(() => new BlockwiseMasker({ ratio: 1.5 })).toThrow(/ratio/);
    expect(() => new BlockwiseMasker({ minAspect: 0 })).toThrow(/minAspect/);
    expect(() => new BlockwiseMasker({ minPatches: 16, maxPatches: 4 })).toThrow(
      /maxPatches: expected at least minPatches/,
    );
    expect(() => new BlockwiseMasker({ fill: "shuffle" as "zeros" })).toThrow(
      /fill: expected "zeros" or "noise"/,
    );
  });
});

describe("pixel ↔ token masks", () => {
  it("pools fractions per patch and thresholds them", () => {
    // One 4×4 image, patch 2: token 0 has 2 of 4 pixels, token 1 has 1, token 3 has all 4.
    const pixels = new Uint8Array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1]);
    const tm = pixelToTokenMask({ data: pixels, shape: [1, 4, 4] }, 2);
    expect(Array.from(tm.fraction)).toEqual([0.5, 0.25, 0, 1]);
    expect(Array.from(tm.mask)).toEqual([1, 0, 0, 1]);
    expect(
      Array.from(pixelToTokenMask({ data: pixels, shape: [1, 4, 4] }, 2, { threshold: 0.75 }).mask),
    ).toEqual([0, 0, 0, 1]);
    expect(() => pixelToTokenMask({ data: pixels, shape: [1, 4, 4] }, 3)).toThrow(
      /patchSize: expected a divisor/,
    );
    expect(() => pixelToTokenMask({ data: pixels, shape: [1, 4, 4] }, 2, { threshold: 0 })).toThrow(
      /threshold/,
    );
  });

  it("counts every nonzero pixel, four at a time or one at a time", () => {
    // Patches of 4 or 8 on 4-byte-aligned rows take the 32-bit path, the rest the byte loop; any
    // nonzero byte (not only 1) is a masked pixel on both.
    const rng = Rng.seed(9);
    for (const [B, H, W, P, shift] of [
      [3, 16, 24, 4, 0],
      [2, 16, 16, 8, 4],
      [2, 16, 16, 8, 1],
      [2, 12, 18, 3, 0],
    ]) {
      const backing = new Uint8Array(shift + B * H * W);
      for (let i = shift; i < backing.length; i++)
        backing[i] = rng.bernoulli(0.4) ? [1, 2, 128, 255][rng.int(0, 4)] : 0;
      const data = backing.subarray(shift);
      const gw = W / P;
      const expected = new Float32Array((B * H * W) / (P * P));
      for (let b = 0; b < B; b++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++)
            if (data[(b * H + y) * W + x] !== 0)
              expected[((b * H) / P / P) * W + Math.floor(y / P) * gw + Math.floor(x / P)] += 1;
      for (let i = 0; i < expected.length; i++) expected[i] /= P * P;
      const tm = pixelToTokenMask({ data, shape: [B, H, W] }, P);
      expect(Array.from(tm.fraction), `${B}×${H}×${W} patch ${P} at +${shift}`).toEqual(
        Array.from(expected),
      );
      expect(Array.from(tm.mask)).toEqual(Array.from(expected, (f) => (f >= 0.5 ? 1 : 0)));
    }
  });

  it("token → pixel → token is the identity", () => {
    const rng = Rng.seed(8);
    const tokens = new Uint8Array(3 * 12);
    for (let i = 0; i < tokens.length; i++) tokens[i] = rng.bernoulli(0.5) ? 1 : 0;
    const pixels = tokenToPixelMask(tokens, [3, 4], 4);
    expect(pixels.shape).toEqual([3, 12, 16]);
    const back = pixelToTokenMask(pixels, 4);
    expect(back.mask).toEqual(tokens);
    expect(Array.from(back.fraction)).toEqual(Array.from(tokens));
    expect(() => tokenToPixelMask(new Uint8Array(5), [2, 2], 4)).toThrow(
      /tokenMask: expected a multiple of 4/,
    );
  });
});
