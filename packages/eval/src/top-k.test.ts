import { Rng } from "@sit/core";
import { describe, expect, it } from "vitest";
import { TopKSelector } from "./top-k";

describe("TopKSelector", () => {
  it("matches a full sort (value desc, index asc) on data full of ties, across buffer cuts", () => {
    const rng = Rng.seed(3);
    for (const [n, k] of [
      [5000, 200],
      [3000, 1],
      [50, 50],
      [40, 100],
      [2000, 700],
    ]) {
      // Values from only 20 levels, so most comparisons are ties broken by the index.
      const s = Float32Array.from({ length: n + 7 }, () => rng.int(0, 20) / 4);
      const sel = new TopKSelector(k);
      const val = new Float32Array(k);
      const idx = new Int32Array(k);
      const count = sel.select(s, 7, n, val, idx);
      const expected = Array.from({ length: n }, (_, j) => j)
        .sort((a, b) => s[7 + b] - s[7 + a] || a - b)
        .slice(0, k);
      expect(count).toBe(Math.min(n, k));
      expect(Array.from(idx.subarray(0, count))).toEqual(expected);
      expect(Array.from(val.subarray(0, count))).toEqual(expected.map((j) => s[7 + j]));
    }
  });
});
