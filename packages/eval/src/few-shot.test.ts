import { ConfigError, Rng } from "@sit/core";
import { ArrayDataset, SubsetDataset } from "@sit/data";
import { describe, expect, it } from "vitest";
import type { FeatureSet } from "./feature-set";
import { fewShot, firstKPerClass, meanConfidence, sampleEpisodes } from "./few-shot";

/** Gaussian clusters: class c centred at `sep`·e_c in `dim` dimensions, noise std 1. */
function clusters(
  classes: number,
  perClass: number,
  dim: number,
  sep: number,
  seed: number,
): FeatureSet {
  const rng = Rng.seed(seed);
  const n = classes * perClass;
  const features = new Float32Array(n * dim);
  rng.fillNormal(features);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % classes;
    features[i * dim + labels[i]] += sep;
  }
  return { features, labels, dim };
}

describe("few-shot episodes", () => {
  it("draws valid, seed-deterministic episodes", () => {
    const { labels } = clusters(8, 30, 4, 0, 1);
    const opts = { ways: 5, shots: 3, queries: 4, count: 20, seed: 11 };
    const a = sampleEpisodes(labels, opts);
    const b = sampleEpisodes(labels, opts);
    expect(a).toEqual(b);
    const c = sampleEpisodes(labels, { ...opts, seed: 12 });
    expect(c).not.toEqual(a);
    for (const ep of a) {
      expect(new Set(ep.classes).size).toBe(5);
      const rows = [...ep.support, ...ep.query];
      expect(new Set(rows).size).toBe(rows.length); // support and query disjoint, no repeats
      expect(Array.from(ep.support, (r) => labels[r])).toEqual(
        Array.from(ep.support, (_, i) => ep.classes[Math.floor(i / 3)]),
      );
      expect(Array.from(ep.query, (r) => labels[r])).toEqual(
        Array.from(ep.query, (_, i) => ep.classes[Math.floor(i / 4)]),
      );
    }
    // Over 20 episodes every one of the 8 classes shows up (a sampler stuck on the first 5 would fail).
    expect(new Set(a.flatMap((e) => [...e.classes])).size).toBe(8);
  });

  it("reports the mean and 95% CI of per-episode accuracies, checked by a direct computation", () => {
    const data = clusters(10, 40, 16, 2.5, 2);
    const [proto] = fewShot(data, {
      ways: 5,
      shots: 2,
      queries: 5,
      episodes: 50,
      seed: 3,
      classifiers: ["prototype"],
    });
    // Recompute every episode's nearest-centroid accuracy here, from the same episodes.
    const eps = sampleEpisodes(data.labels, { ways: 5, shots: 2, queries: 5, count: 50, seed: 3 });
    const d = data.dim;
    const unit = (r: number) => {
      const v = Array.from(data.features.subarray(r * d, (r + 1) * d));
      const n = Math.hypot(...v);
      return v.map((x) => x / n);
    };
    const direct = eps.map((ep) => {
      const cents = [0, 1, 2, 3, 4].map((c) => {
        const a = unit(ep.support[2 * c]);
        const b = unit(ep.support[2 * c + 1]);
        return a.map((x, j) => (x + b[j]) / 2);
      });
      let hits = 0;
      ep.query.forEach((r, q) => {
        const u = unit(r);
        const dist = cents.map((m) => m.reduce((s, x, j) => s + (x - u[j]) ** 2, 0));
        if (dist.indexOf(Math.min(...dist)) === Math.floor(q / 5)) hits++;
      });
      return hits / 25;
    });
    for (let e = 0; e < 50; e++) expect(proto.accuracies[e]).toBeCloseTo(direct[e], 12);
    const mean = direct.reduce((s, x) => s + x, 0) / 50;
    const meanSq = direct.reduce((s, x) => s + x * x, 0) / 50;
    const std = Math.sqrt(meanSq - mean * mean);
    expect(proto.mean).toBeCloseTo(mean, 12);
    expect(proto.std).toBeCloseTo(std, 10);
    expect(proto.ci95).toBeCloseTo((1.96 * std) / Math.sqrt(50), 10);
    expect(proto.std).toBeGreaterThan(0); // a non-degenerate case
    expect(proto.mean).toBeGreaterThan(0.5); // chance is 0.2
  });

  it("meanConfidence on a hand example", () => {
    // values 0.5, 0.7, 0.9: mean 0.7, population variance (0.04 + 0 + 0.04) / 3.
    const r = meanConfidence([0.5, 0.7, 0.9]);
    expect(r.mean).toBeCloseTo(0.7, 14);
    expect(r.std).toBeCloseTo(Math.sqrt(0.08 / 3), 14);
    expect(r.ci95).toBeCloseTo((1.96 * Math.sqrt(0.08 / 3)) / Math.sqrt(3), 14);
  });

  it("both classifiers solve well-separated clusters; logistic regression learns real signal", () => {
    const easy = clusters(6, 25, 8, 8, 4);
    const res = fewShot(easy, { ways: 5, shots: 5, queries: 10, episodes: 20, seed: 5 });
    expect(res.map((r) => r.classifier)).toEqual(["prototype", "logistic"]);
    for (const r of res) expect(r.mean).toBe(1);
    // Overlapping clusters (chance = 0.2): both well above chance, neither perfect.
    const hard = clusters(6, 40, 32, 3, 6);
    const [p, l] = fewShot(hard, { ways: 5, shots: 5, queries: 10, episodes: 30, seed: 5 });
    for (const r of [p, l]) {
      expect(r.mean).toBeGreaterThan(0.75);
      expect(r.mean).toBeLessThan(0.95);
    }
  });

  it("rejects unlabeled rows and more ways than eligible classes", () => {
    const data = clusters(4, 10, 4, 3, 7);
    expect(() => fewShot(data, { ways: 5, seed: 1 })).toThrow(ConfigError);
    expect(() => fewShot(data, { ways: 4, shots: 5, queries: 6, seed: 1 })).toThrow(
      /expected at most 0 .*got 4/,
    );
    const unlabeled = { ...data, labels: new Int32Array(40).fill(-1) };
    expect(() => fewShot(unlabeled, { ways: 2, seed: 1 })).toThrow(/unlabeled/);
  });
});

describe("firstKPerClass (the reference's num_imgs_per_cat)", () => {
  it("keeps the first k rows of each class in dataset order", () => {
    const labels = [2, 0, 2, 1, 0, 2, 0, 1, 2, 0];
    // class 0 at 1, 4, 6, 9; class 1 at 3, 7; class 2 at 0, 2, 5, 8 → first 2 of each.
    expect(Array.from(firstKPerClass(labels, 2))).toEqual([0, 1, 2, 3, 4, 7]);
    expect(Array.from(firstKPerClass(labels, 1))).toEqual([0, 1, 3]);
    expect(Array.from(firstKPerClass(labels, 3))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("takes a labelled @sit/data dataset and composes with SubsetDataset", () => {
    const labels = Int32Array.from([1, 1, 0, 1, 0, 0]);
    const ds = new ArrayDataset(new Uint8Array(6 * 4), 2, 2, 1, labels);
    const kept = firstKPerClass(ds, 2);
    expect(Array.from(kept)).toEqual([0, 1, 2, 4]);
    const subset = new SubsetDataset(ds, kept);
    expect(Array.from(subset.labels!)).toEqual([1, 1, 0, 0]);
    expect(() => firstKPerClass(new ArrayDataset(new Uint8Array(8), 2, 2, 1), 1)).toThrow(
      /labelled dataset/,
    );
  });

  it("refuses unlabeled data and k < 1", () => {
    expect(() => firstKPerClass([0, -1], 1)).toThrow(/labels\[1\].*labelled dataset/);
    expect(() => firstKPerClass([0, 1], 0)).toThrow(ConfigError);
  });
});
