import { Rng } from "@sit/core";
import { describe, expect, it } from "vitest";
import { planStackedViews } from "./corrupt-views";
import { type CorruptionPlan, applyCorruptionPlan } from "./corruption-plan";
import { GmmlMasker, type GmmlMaskerOptions } from "./gmml-masker";
import type { ImageBatch } from "./images";
import type { MaskingStrategy } from "./strategy";

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

/**
 * The straightforward stacking of per-view plans (what corruptViewsStacked did before plans were
 * drawn in place): view i's pixel sources move by i·B·H·W, its noise slots by the earlier views'.
 */
function stackReference(plans: CorruptionPlan[]) {
  const [B, H, W, C] = plans[0].shape;
  const pixels = B * H * W;
  const source = new Int32Array(plans.length * pixels);
  const noise: number[] = [];
  const masks = new Float32Array(plans.length * pixels);
  for (const [i, plan] of plans.entries()) {
    const slots = noise.length / C;
    for (let p = 0; p < pixels; p++) {
      const s = plan.source[p];
      source[i * pixels + p] = s >= 0 ? s + i * pixels : s === -1 ? -1 : s - slots;
    }
    noise.push(...plan.noise);
    for (let p = 0; p < pixels; p++) masks[i * pixels + p] = plan.pixelMask.data[p];
  }
  const tokenMasks = plans.flatMap((p) =>
    p.tokenMask ? [Float32Array.from(p.tokenMask.mask)] : [],
  );
  return { source, noise: Float32Array.from(noise), masks, tokenMasks };
}

describe("GmmlMasker.planViews and planStackedViews", () => {
  const cases: [string, GmmlMaskerOptions][] = [
    ["zeros + noise + replacement, token masks", { fill: ["zeros", "noise"], patchSize: 4 }],
    ["noise + replacement", { fill: "noise", replaceProb: 0.6 }],
    [
      "all fills, excludeSelf, patch-aligned",
      { fill: ["zeros", "noise", "shuffle"], excludeSelf: true, align: 2, patchSize: 4 },
    ],
  ];
  const shape: [number, number, number, number] = [6, 16, 12, 3];
  for (const [label, options] of cases)
    it(`are bit for bit the per-view plans, stacked (${label})`, () => {
      const masker = new GmmlMasker(options);
      // The same masker seen as any strategy: planStackedViews' generic path.
      const generic: MaskingStrategy = {
        apply: (images, rng, out) => masker.apply(images, rng, out),
        plan: (s, rng) => masker.plan(s, rng),
      };
      for (const seed of [1, 2, 3]) {
        for (const views of [1, 2, 3]) {
          const r1 = Rng.seed(seed);
          const plans = Array.from({ length: views }, () => masker.plan(shape, r1));
          const expected = stackReference(plans);
          expect(expected.noise.length).toBeGreaterThan(0);
          const r2 = Rng.seed(seed);
          const stacked = masker.planViews(shape, views, r2);
          expect(stacked.shape).toEqual([views * 6, 16, 12, 3]);
          expect(stacked.source).toEqual(expected.source);
          expect(stacked.noise).toEqual(expected.noise);
          expect(stacked.pixelMask.data).toEqual(
            Uint8Array.from(plans.flatMap((p) => Array.from(p.pixelMask.data))),
          );
          expect(stacked.images).toEqual(plans.flatMap((p) => p.images));
          if (options.patchSize)
            expect(stacked.tokenMask?.mask).toEqual(
              Uint8Array.from(plans.flatMap((p) => Array.from(p.tokenMask!.mask))),
            );
          expect(r2.state()).toEqual(r1.state());
          for (const strategy of [masker, generic]) {
            const r3 = Rng.seed(seed);
            expect(planStackedViews(strategy, shape, views, r3)).toEqual(expected);
            expect(r3.state()).toEqual(r1.state());
          }
        }
      }
    });

  it("a subclass's own plan is used, not planViews", () => {
    class ZeroPlans extends GmmlMasker {
      override plan(shape: readonly [number, number, number, number], rng: Rng) {
        const plan = super.plan(shape, rng);
        plan.source.fill(-1);
        return plan;
      }
    }
    const stacked = planStackedViews(new ZeroPlans(), shape, 2, Rng.seed(1));
    expect(stacked.source.every((s) => s === -1)).toBe(true);
  });

  it("checks its arguments", () => {
    const masker = new GmmlMasker();
    expect(() => masker.planViews([2, 8, 8, 3], 0, Rng.seed(1))).toThrow(/views/);
    expect(() => masker.planViews([2, 8, 8, 3], 1.5, Rng.seed(1))).toThrow(/views/);
  });
});
