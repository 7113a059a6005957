import { ConfigError, Rng } from "@sit/core";
import { describe, expect, it } from "vitest";
import { type GmmlBlock, GmmlMasker, type GmmlMaskerOptions } from "./index";

// Python's round() (half to even), written here independently of the production helper.
function pyRound(x: number): number {
  const lower = Math.floor(x);
  const frac = x - lower;
  if (frac === 0.5) return lower % 2 === 0 ? lower : lower + 1;
  return Math.round(x);
}

function greyBatch(
  B: number,
  H: number,
  W: number,
  seed = 0,
): { data: Float32Array; shape: [number, number, number, number] } {
  const rng = Rng.seed(seed + 1000);
  const data = new Float32Array(B * H * W);
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform(-2, 2);
  return { data, shape: [B, H, W, 1] };
}

/** Replay blocks on an empty mask: the coverage before the last block and after it. */
function replay(
  blocks: GmmlBlock[],
  H: number,
  W: number,
): { before: number; after: number; mask: Uint8Array } {
  const mask = new Uint8Array(H * W);
  let covered = 0;
  let before = 0;
  for (const b of blocks) {
    before = covered;
    for (let y = b.row; y < b.row + b.height; y++)
      for (let x = b.col; x < b.col + b.width; x++)
        if (!mask[y * W + x]) {
          mask[y * W + x] = 1;
          covered++;
        }
  }
  return { before, after: covered, mask };
}

interface Config {
  H: number;
  W: number;
  options: GmmlMaskerOptions;
}

const CONFIGS: Config[] = [
  { H: 32, W: 32, options: { ratio: 0.5 } },
  { H: 32, W: 32, options: { ratio: 0.3, maxBlockFraction: 0.5 } },
  { H: 48, W: 40, options: { ratio: 0.75, align: 4 } },
  { H: 30, W: 30, options: { ratio: 0.6, align: 4 } }, // sides not multiples of align: clipping
  { H: 64, W: 64, options: { ratio: 0.9, align: 8, maxBlockFraction: 0.5 } },
  { H: 224, W: 224, options: { ratio: 0.5, align: 16 } },
];

describe("GMML block drawing (§3.1), property tests over many seeds", () => {
  for (const { H, W, options } of CONFIGS) {
    const a = options.align ?? 1;
    const f = options.maxBlockFraction ?? 0.3;
    const r = options.ratio ?? 0.5;
    it(`${H}×${W}, r=${r}, align=${a}, maxBlockFraction=${f}`, () => {
      const masker = new GmmlMasker({ ...options, replaceProb: 0 });
      // Largest side the reference's formula can produce: round((floor(f·side) − 1)/a)·a.
      const limitH = pyRound((Math.floor(f * H) - 1) / a) * a;
      const limitW = pyRound((Math.floor(f * W) - 1) / a) * a;
      if (a === 1) expect(limitH).toBeLessThan(Math.floor(f * H));
      const seeds = H >= 224 ? 4 : 40;
      const failures: string[] = [];
      for (let seed = 0; seed < seeds; seed++) {
        const B = 8;
        const result = masker.apply(greyBatch(B, H, W, seed), Rng.seed(seed));
        result.images.forEach((rec, i) => {
          const label = `seed ${seed} image ${i}`;
          const check = (ok: boolean, what: string) => {
            if (!ok) failures.push(`${label}: ${what}`);
          };
          // Target in [min(0.5, r), r]·H·W.
          check(
            rec.target >= Math.min(0.5, r) * H * W - 1e-9,
            `target ${rec.target} below the range`,
          );
          check(rec.target <= r * H * W + 1e-9, `target ${rec.target} above the range`);
          if (r <= 0.5)
            check(rec.target === r * H * W, `target ${rec.target} is not exactly r·H·W`);
          // Coverage in [target, target + one block): the loop stops at the first block reaching it.
          const { before, after, mask } = replay(rec.blocks, H, W);
          check(after === rec.covered, `replayed coverage ${after} ≠ reported ${rec.covered}`);
          check(after >= rec.target, `coverage ${after} below target ${rec.target}`);
          check(
            before < rec.target,
            `coverage before the last block ${before} already reached the target`,
          );
          const last = rec.blocks[rec.blocks.length - 1];
          check(after - rec.target < last.height * last.width, "overshoot larger than one block");
          // The returned pixel mask is exactly the union of the blocks.
          const got = result.pixelMask.data.subarray(i * H * W, (i + 1) * H * W);
          check(
            got.every((v, p) => v === mask[p]),
            "pixel mask is not the union of the blocks",
          );
          for (const b of rec.blocks) {
            const at = `block ${JSON.stringify(b)}`;
            check(b.row % a === 0 && b.col % a === 0, `${at}: corner not on the align grid`);
            check(b.height >= 1 && b.width >= 1, `${at}: empty`);
            check(
              b.height <= limitH && b.width <= limitW,
              `${at}: side above the limit ${limitH}×${limitW}`,
            );
            check(b.row + b.height <= H && b.col + b.width <= W, `${at}: outside the image`);
            // Sides are multiples of align unless clipped at the image edge.
            check(
              b.row + b.height === H || b.height % a === 0,
              `${at}: height not a multiple of align`,
            );
            check(
              b.col + b.width === W || b.width % a === 0,
              `${at}: width not a multiple of align`,
            );
          }
        });
      }
      expect(failures.slice(0, 10)).toEqual([]);
    });
  }

  it("align = patch size gives masks that are unions of whole patches", () => {
    for (const [size, p] of [
      [32, 4],
      [64, 8],
      [224, 16],
    ]) {
      const masker = new GmmlMasker({ align: p, patchSize: p, replaceProb: 0.5 });
      for (let seed = 0; seed < (size === 224 ? 3 : 25); seed++) {
        const result = masker.apply(greyBatch(4, size, size, seed), Rng.seed(seed));
        const m = result.pixelMask.data;
        for (let b = 0; b < 4; b++)
          for (let ty = 0; ty < size / p; ty++)
            for (let tx = 0; tx < size / p; tx++) {
              const first = m[(b * size + ty * p) * size + tx * p];
              for (let y = 0; y < p; y++)
                for (let x = 0; x < p; x++)
                  if (m[(b * size + ty * p + y) * size + tx * p + x] !== first)
                    throw new Error(
                      `seed ${seed}: patch (${ty}, ${tx}) of image ${b} is partly masked`,
                    );
            }
        expect(Array.from(result.tokenMask!.fraction).every((v) => v === 0 || v === 1)).toBe(true);
      }
    }
  });

  it("unclipped block sides follow round(randint[a, floor(0.3·side)) / a)·a", () => {
    for (const [size, a] of [
      [32, 1],
      [40, 4],
    ]) {
      const maxB = Math.floor(0.3 * size);
      // The law of a side, enumerated from the formula with the test's own Python rounding.
      const expected = new Map<number, number>();
      for (let h = a; h < maxB; h++) {
        const side = pyRound(h / a) * a;
        expected.set(side, (expected.get(side) ?? 0) + 1 / (maxB - a));
      }
      const counts = new Map<number, number>();
      let n = 0;
      const masker = new GmmlMasker({ align: a, replaceProb: 0 });
      const rng = Rng.seed(size);
      const batch = greyBatch(50, size, size);
      for (let call = 0; call < 20; call++) {
        for (const rec of masker.apply(batch, rng).images)
          for (const b of rec.blocks) {
            // min(h, H − row0) cannot bind when H − row0 ≥ maxB − 1.
            if (size - b.row < maxB - 1) continue;
            counts.set(b.height, (counts.get(b.height) ?? 0) + 1);
            n++;
          }
      }
      expect([...counts.keys()].sort((x, y) => x - y)).toEqual(
        [...expected.keys()].sort((x, y) => x - y),
      );
      for (const [side, p] of expected) {
        const freq = (counts.get(side) ?? 0) / n;
        expect(
          Math.abs(freq - p),
          `${size}px align ${a}: side ${side} frequency ${freq} vs ${p}`,
        ).toBeLessThan(4.5 * Math.sqrt((p * (1 - p)) / n));
      }
    }
  });
});

// The reference loop (GMML_drop_rand_patches), re-implemented as plainly as possible with its own
// generator, to estimate the expected covered fraction independently of the production code.
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function referenceCoveredFraction(
  H: number,
  W: number,
  maxReplace: number,
  align: number,
  random: () => number,
): number {
  const randint = (low: number, high: number) => low + Math.floor(random() * (high - low));
  const nDropPix =
    (Math.min(0.5, maxReplace) + random() * (maxReplace - Math.min(0.5, maxReplace))) * H * W;
  const mxBlkHeight = Math.trunc(H * 0.3);
  const mxBlkWidth = Math.trunc(W * 0.3);
  const mask: number[][] = Array.from({ length: H }, () => new Array(W).fill(0));
  let sum = 0;
  while (sum < nDropPix) {
    const rndR = Math.floor(randint(0, H - align) / align) * align;
    const rndC = Math.floor(randint(0, W - align) / align) * align;
    let rndH = Math.min(randint(align, mxBlkHeight), H - rndR);
    rndH = pyRound(rndH / align) * align;
    let rndW = Math.min(randint(align, mxBlkWidth), W - rndC);
    rndW = pyRound(rndW / align) * align;
    for (let y = rndR; y < Math.min(H, rndR + rndH); y++)
      for (let x = rndC; x < Math.min(W, rndC + rndW); x++) {
        if (mask[y][x] === 0) sum++;
        mask[y][x] = 1;
      }
  }
  return sum / (H * W);
}

function meanAndStandardError(xs: number[]): { mean: number; se: number } {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1);
  return { mean, se: Math.sqrt(variance / xs.length) };
}

describe("mean covered fraction against an independent simulation of the reference", () => {
  // The reference settings (r = 0.5, zeros, align 1) at 224 px, then smaller images where one
  // block's overshoot weighs more (and align 4 on 40 px, where h = 10 rounds half to even).
  const cases = [
    { H: 224, ratio: 0.5, align: 1, sims: 3000 },
    { H: 32, ratio: 0.5, align: 1, sims: 20000 },
    { H: 40, ratio: 0.5, align: 4, sims: 20000 },
  ];
  it.each(cases)(
    "$H×$H, r = $ratio, align $align, zeros: 1,000 draws",
    ({ H, ratio, align, sims }) => {
      const simulated: number[] = [];
      const random = mulberry32(12345 + H);
      for (let i = 0; i < sims; i++)
        simulated.push(referenceCoveredFraction(H, H, ratio, align, random));
      const expected = meanAndStandardError(simulated);

      const masker = new GmmlMasker({ ratio, align, fill: "zeros", replaceProb: 0 });
      const rng = Rng.seed(2024);
      const batch = greyBatch(100, H, H);
      const ours: number[] = [];
      let previous: ReturnType<GmmlMasker["apply"]> | undefined;
      for (let call = 0; call < 10; call++) {
        previous = masker.apply(batch, rng, previous);
        const m = previous.pixelMask.data;
        for (let b = 0; b < 100; b++) {
          let n = 0;
          for (let p = b * H * H; p < (b + 1) * H * H; p++) n += m[p];
          ours.push(n / (H * H));
        }
      }
      expect(ours).toHaveLength(1000);
      const got = meanAndStandardError(ours);
      // Both lie above min(0.5, r) (overshoot of the last block); they must agree within 4.5 standard errors.
      expect(expected.mean).toBeGreaterThan(0.5);
      const tolerance = 4.5 * Math.hypot(expected.se, got.se);
      expect(
        Math.abs(got.mean - expected.mean),
        `ours ${got.mean} vs reference ${expected.mean} ± ${tolerance}`,
      ).toBeLessThan(tolerance);
    },
  );
});

describe("GMML input checks", () => {
  const batch = greyBatch(2, 32, 32);
  it("rejects ratios and block fractions outside (0, 1]", () => {
    for (const ratio of [0, -0.1, 1.01, Number.NaN])
      expect(() => new GmmlMasker({ ratio }), `ratio ${ratio}`).toThrow(
        /ratio: expected a finite number in \(0, 1\]/,
      );
    for (const maxBlockFraction of [0, 1.5, -1])
      expect(() => new GmmlMasker({ maxBlockFraction }), `${maxBlockFraction}`).toThrow(
        /maxBlockFraction: expected a finite number in \(0, 1\]/,
      );
    expect(() => new GmmlMasker({ replaceRatio: 0 })).toThrow(/replaceRatio/);
    expect(() => new GmmlMasker({ replaceProb: 1.5 })).toThrow(/replaceProb/);
    expect(() => new GmmlMasker({ align: 2.5 })).toThrow(/align: expected an integer/);
    expect(() => new GmmlMasker({ fill: "blur" as "zeros" })).toThrow(
      /fill: expected one of "zeros", "noise", "shuffle"/,
    );
  });

  it("rejects an align larger than the image or than the block limit", () => {
    expect(() => new GmmlMasker({ align: 40 }).apply(batch, Rng.seed(0))).toThrow(
      /align: expected an integer smaller than the image \(32×32\), got 40/,
    );
    // floor(0.3·32) = 9: randint(16, 9) would be empty (the reference crashes there).
    expect(() => new GmmlMasker({ align: 16 }).apply(batch, Rng.seed(0))).toThrow(ConfigError);
    expect(() => new GmmlMasker({ align: 16 }).apply(batch, Rng.seed(0))).toThrow(
      /block limit floor\(maxBlockFraction·side\) = 9/,
    );
    expect(() => new GmmlMasker({ align: 9 }).apply(batch, Rng.seed(0))).toThrow(/block limit/);
    expect(() =>
      new GmmlMasker({ align: 8, maxBlockFraction: 0.6 }).apply(batch, Rng.seed(0)),
    ).not.toThrow();
  });

  it("rejects a batch of one with replacement and excludeSelf", () => {
    const one = greyBatch(1, 32, 32);
    expect(() => new GmmlMasker({ excludeSelf: true }).apply(one, Rng.seed(0))).toThrow(
      /excludeSelf needs at least 2 images .* got a batch of 1/,
    );
    expect(() =>
      new GmmlMasker({ excludeSelf: true, replaceProb: 0 }).apply(one, Rng.seed(0)),
    ).not.toThrow();
    expect(() => new GmmlMasker({ excludeSelf: false }).apply(one, Rng.seed(0))).not.toThrow();
  });

  it("rejects a target no block can reach instead of looping forever", () => {
    // 7×7 with blocks below floor(0.3·7) = 2: every block is 1×1 at row, col ≤ 5, so only 36 of 49
    // pixels can be covered; the reference would loop forever on ratio 1.
    expect(() => new GmmlMasker({ ratio: 1 }).apply(greyBatch(1, 7, 7), Rng.seed(0))).toThrow(
      /ratio: expected at most 0.7347/,
    );
    expect(() =>
      new GmmlMasker({ ratio: 0.5 }).apply(greyBatch(1, 7, 7), Rng.seed(0)),
    ).not.toThrow();
  });

  it("rejects malformed images", () => {
    const m = new GmmlMasker();
    expect(() =>
      m.apply({ data: new Float32Array(10), shape: [1, 32, 32, 1] }, Rng.seed(0)),
    ).toThrow(/images.data: expected 1024 values/);
    expect(() =>
      m.apply(
        {
          data: new Float32Array(1024),
          shape: [32, 32, 1] as unknown as [number, number, number, number],
        },
        Rng.seed(0),
      ),
    ).toThrow(/images.shape: expected \[B, H, W, C\]/);
    expect(() => m.apply(batch, undefined as unknown as Rng)).toThrow(/rng: expected an Rng/);
  });
});
