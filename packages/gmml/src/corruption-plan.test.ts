import { Rng } from "@sit/core";
import { describe, expect, it } from "vitest";
import { applyCorruptionPlan } from "./corruption-plan";
import { GmmlMasker, type GmmlMaskerOptions } from "./gmml-masker";
import type { ImageBatch } from "./images";

function batch(shape: [number, number, number, number]): ImageBatch {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: Rng.seed(5).fillNormal(new Float32Array(n), 0, 1), shape };
}

describe("GmmlMasker.plan", () => {
  const cases: [string, GmmlMaskerOptions][] = [
    ["zeros + replacement", { fill: "zeros" }],
    ["noise + replacement", { fill: "noise" }],
    ["shuffle, no replacement", { fill: "shuffle", replaceProb: 0 }],
    [
      "all fills, patch-aligned, token masks",
      { fill: ["zeros", "noise", "shuffle"], align: 2, patchSize: 4 },
    ],
    [
      "all fills, excludeSelf",
      { fill: ["zeros", "noise", "shuffle"], excludeSelf: true, replaceProb: 0.7 },
    ],
  ];
  for (const [label, options] of cases)
    it(`applied to the images gives exactly apply's result (${label})`, () => {
      const masker = new GmmlMasker(options);
      const images = batch([6, 16, 12, 3]);
      for (const seed of [1, 2, 3]) {
        const r1 = Rng.seed(seed);
        const r2 = Rng.seed(seed);
        const expected = masker.apply(images, r1);
        const plan = masker.plan(images.shape, r2);
        const got = applyCorruptionPlan(images, plan);
        expect(got.data).toEqual(expected.corrupted.data);
        expect(plan.pixelMask.data).toEqual(expected.pixelMask.data);
        expect(plan.tokenMask?.mask).toEqual(expected.tokenMask?.mask);
        expect(plan.images).toEqual(expected.images);
        // The Rng advanced by the same draws.
        expect(r2.state()).toEqual(r1.state());
      }
    });

  it("checks its arguments", () => {
    const masker = new GmmlMasker();
    expect(() => masker.plan([2, 8, 0, 3], Rng.seed(1))).toThrow(/shape/);
    expect(() => masker.plan([2, 8, 8, 3], {} as Rng)).toThrow(/rng/);
  });
});
