import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng, ShapeError } from "@sit/core";
import { describe, expect, it } from "vitest";
import type { FeatureSet } from "./feature-set";
import { knnEval } from "./knn";

/** Unit vector at the given cosine with (1, 0), on the upper (+) or lower (−) half plane. */
function at(cos: number, sign = 1): [number, number] {
  return [cos, sign * Math.sqrt(1 - cos * cos)];
}

function set(rows: number[][], labels: number[]): FeatureSet {
  return {
    features: Float32Array.from(rows.flat()),
    labels: Int32Array.from(labels),
    dim: rows[0].length,
  };
}

const query = (label: number): FeatureSet => set([[1, 0]], [label]);

describe("knnEval (DINO weighted vote)", () => {
  it("weights votes by exp(sim / T): a close neighbour outvotes two far ones only at low T", () => {
    // Query (1,0) of class 0. Neighbours by cosine: class 0 at 0.9, class 1 twice at 0.5, class 2 at −1.
    const train = set([at(0.9), at(0.5), at(0.5, -1), [-1, 0]], [0, 1, 1, 2]);
    // By hand: T = 0.07 → class 0 gets e^(0.9/0.07) ≈ 3.85e5, class 1 gets 2·e^(0.5/0.07) ≈ 2.5e3.
    //          T = 1    → class 0 gets e^0.9 ≈ 2.46,           class 1 gets 2·e^0.5 ≈ 3.30.
    expect(Math.exp(0.9 / 0.07)).toBeGreaterThan(2 * Math.exp(0.5 / 0.07));
    expect(Math.exp(0.9)).toBeLessThan(2 * Math.exp(0.5));
    const cold = knnEval(train, query(0), { ks: [1, 3], temperature: 0.07 });
    expect(cold.map((r) => [r.k, r.top1, r.top5, r.predictions[0]])).toEqual([
      [1, 1, 1, 0],
      [3, 1, 1, 0],
    ]);
    const warm = knnEval(train, query(0), { ks: [1, 3], temperature: 1 });
    // k = 1 sees only the 0.9 neighbour; k = 3 is outvoted by class 1, yet class 0 is second → top-5 hit.
    expect(warm.map((r) => [r.k, r.top1, r.top5, r.predictions[0]])).toEqual([
      [1, 1, 1, 0],
      [3, 0, 1, 1],
    ]);
    // k = 4 adds the class-2 row at cosine −1: weight e^(−1/T) > 0, so class 2 becomes a (last) candidate.
    const all = knnEval(train, query(2), { ks: [3, 4], temperature: 1 });
    expect(all.map((r) => [r.top1, r.top5])).toEqual([
      [0, 0], // class 2 has no vote among 3 neighbours: not a top-5 hit
      [0, 1],
    ]);
  });

  it("breaks similarity ties at the k-th neighbour towards the earlier training row", () => {
    // Rows 1 and 2 are the same vector (cosine 0.6); only one fits in k = 2 beside row 0 (cosine 1).
    const rows = [at(1), at(0.6), at(0.6)];
    const classOneLast = knnEval(set(rows, [2, 0, 1]), query(1), { ks: [2] })[0];
    // Neighbours: row 0 (class 2), row 1 (class 0): class 1 has no vote → miss in top-1 and top-5.
    expect([classOneLast.top1, classOneLast.top5, classOneLast.predictions[0]]).toEqual([0, 0, 2]);
    const classOneFirst = knnEval(set(rows, [2, 1, 0]), query(1), { ks: [2] })[0];
    // Neighbours: row 0 (class 2), row 1 (class 1) → class 1 second → top-5 hit.
    expect([classOneFirst.top1, classOneFirst.top5]).toEqual([0, 1]);
  });

  it("breaks equal class totals towards the lower class index; accuracy over several queries", () => {
    // Two neighbours at the same cosine 0.8 (mirror images), of classes 3 and 1: equal totals.
    const train = set([at(0.8), at(0.8, -1), [-1, 0], [0, 1]], [3, 1, 0, 2]);
    const test = set(
      [
        [1, 0],
        [1, 0],
        [-1, 0],
        [0, -1],
      ],
      [1, 3, 0, 1],
    );
    const [r] = knnEval(train, test, { ks: [2] });
    // Query 0 (class 1): 1 wins the tie → hit. Query 1 (class 3): predicted 1 → miss, but rank 2 → top-5 hit.
    // Query 2 = (−1,0), class 0: nearest row 2 (cos 1), then rows 1 and 3... row 3 is (0,1) at cos 0 and row 1
    //   at cos −0.8, so neighbours are rows 2 and 3 → class 0 wins → hit.
    // Query 3 = (0,−1), class 1: cosines: row 0 −0.6, row 1 +0.6, row 2 0, row 3 −1 → neighbours rows 1, 2
    //   → class 1 (e^(0.6/T)) beats class 0 (e^0) → hit.
    expect(Array.from(r.predictions)).toEqual([1, 1, 0, 1]);
    expect(r.top1).toBe(3 / 4);
    expect(r.top5).toBe(4 / 4);
  });

  it("matches a brute-force vote (full sort, float64) on random features, chunked", () => {
    const rng = Rng.seed(7);
    const make = (n: number, d: number, c: number): FeatureSet => {
      const features = new Float32Array(n * d);
      rng.fillNormal(features);
      const labels = new Int32Array(n);
      for (let i = 0; i < n; i++) labels[i] = rng.int(0, c);
      // Shift each row towards its class's axis so the vote is not pure chance.
      for (let i = 0; i < n; i++) features[i * d + labels[i]] += 2;
      return { features, labels, dim: d };
    };
    const train = make(300, 16, 10);
    const test = make(50, 16, 10);
    const ks = [1, 5, 20];
    const T = 0.1;
    const norm = (x: Float32Array, i: number, d: number) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[i * d + j] ** 2;
      return Math.sqrt(s);
    };
    const expected = ks.map((k) => {
      let h1 = 0;
      let h5 = 0;
      for (let q = 0; q < 50; q++) {
        const sims = Array.from({ length: 300 }, (_, i) => {
          let dot = 0;
          for (let j = 0; j < 16; j++)
            dot += test.features[q * 16 + j] * train.features[i * 16 + j];
          return { i, s: dot / norm(test.features, q, 16) / norm(train.features, i, 16) };
        }).sort((a, b) => b.s - a.s || a.i - b.i);
        const votes = new Array(10).fill(0);
        for (const { i, s } of sims.slice(0, k)) votes[train.labels[i]] += Math.exp(s / T);
        const y = test.labels[q];
        const ranked = votes.map((v, c) => ({ v, c })).sort((a, b) => b.v - a.v || a.c - b.c);
        if (ranked[0].c === y) h1++;
        if (votes[y] > 0 && ranked.findIndex((e) => e.c === y) < 5) h5++;
      }
      return [k, h1 / 50, h5 / 50];
    });
    const before = tf.memory().numTensors;
    const got = knnEval(train, test, { ks, temperature: T, chunkSize: 7, numClasses: 10 });
    expect(tf.memory().numTensors).toBe(before);
    expect(got.map((r) => [r.k, r.top1, r.top5])).toEqual(expected);
    expect(got[0].top1).toBeGreaterThan(0.3); // real signal, not chance (0.1)
  });

  it("rejects k larger than the training set, unlabeled data and mismatched dimensions", () => {
    const train = set([at(1), at(0.5)], [0, 1]);
    expect(() => knnEval(train, query(0), { ks: [3] })).toThrow(ConfigError);
    expect(() => knnEval(train, query(0), { ks: [3] })).toThrow(
      /k = 3 exceeds the 2 training rows/,
    );
    expect(() => knnEval(train, query(-1), { ks: [1] })).toThrow(/test.labels\[0\].*unlabeled/);
    expect(() => knnEval(set([at(1), at(0.5)], [-1, -1]), query(0), { ks: [1] })).toThrow(
      /train.labels\[0\].*unlabeled/,
    );
    expect(() => knnEval(train, set([[1, 0, 0]], [0]), { ks: [1] })).toThrow(ShapeError);
    expect(() => knnEval(train, query(0), { ks: [1], temperature: 0 })).toThrow(/temperature/);
    expect(() => knnEval(train, query(0), { ks: [] })).toThrow(/ks/);
  });
});
