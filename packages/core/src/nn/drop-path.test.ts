import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors";
import { Rng } from "../rng";
import { DropPath, dropPath } from "./drop-path";

describe("DropPath", () => {
  it("zeros whole samples and scales the kept ones by 1/keep", () => {
    const n = 2000;
    const x = tf.ones([n, 3, 2]);
    const y = dropPath(x, 0.25, Rng.seed(7));
    const v = y.dataSync();
    let kept = 0;
    const bad: number[] = [];
    const scale = Math.fround(1 / 0.75);
    for (let i = 0; i < n; i++) {
      const row = v.subarray(i * 6, i * 6 + 6);
      if (!row.every((r) => r === row[0]) || (row[0] !== 0 && row[0] !== scale)) bad.push(i);
      if (row[0] !== 0) kept++;
    }
    expect(bad, "samples neither fully dropped nor scaled by 1/keep").toEqual([]);
    // Binomial(2000, 0.75): 5 standard deviations ≈ 0.05.
    expect(Math.abs(kept / n - 0.75)).toBeLessThan(0.05);
    tf.dispose([x, y]);
  });

  it("is reproducible from the seed and identity in eval mode or with p = 0", () => {
    const x = tf.randomNormal([16, 4], 0, 1, "float32", 1);
    const a = new DropPath(0.5, { seed: 3 }).apply(x).dataSync();
    const b = new DropPath(0.5, { rng: Rng.seed(3) }).apply(x).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(new DropPath(0.5, { seed: 3 }).eval().apply(x)).toBe(x);
    expect(new DropPath(0).apply(x)).toBe(x);
    expect(Array.from(dropPath(x, 1, Rng.seed(1)).dataSync()).every((v) => v === 0)).toBe(true);
    x.dispose();
  });

  it("passes gradients through the mask", () => {
    const rng = Rng.seed(11);
    const x = tf.ones([8, 2]);
    const g = tf
      .grad((t: tf.Tensor) => dropPath(t, 0.5, rng.clone()).sum())(x)
      .dataSync();
    const y = dropPath(x, 0.5, rng.clone()).dataSync();
    expect(Array.from(g)).toEqual(Array.from(y));
    x.dispose();
  });

  it("validates its arguments", () => {
    expect(() => new DropPath(1.5, { seed: 1 })).toThrow(ConfigError);
    expect(() => new DropPath(0.1)).toThrow(/rng.*seed/);
    expect(() => dropPath(tf.ones([2]), 0.1, {} as Rng)).toThrow(/rng: expected an Rng/);
  });
});
