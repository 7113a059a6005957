import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError } from "@sit/core";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { renderConfusionMatrixPng } from "./confusion-png";
import {
  accuracy,
  confusionMatrix,
  meanPerClassAccuracy,
  perClassAccuracy,
  predictClasses,
  topKAccuracy,
} from "./metrics";

// 4 rows × 6 classes, scores chosen by hand.
const scores = Float32Array.from([
  // row 0, true 2: class 2 highest → top-1 hit
  0.1, 0.2, 0.9, 0.0, 0.0, 0.0,
  // row 1, true 0: ranks: 5 (0.8) > 4 (0.7) > 0 (0.6) → rank 2: top-1 miss, top-3 hit
  0.6, 0.1, 0.2, 0.3, 0.7, 0.8,
  // row 2, true 3: tie 0.5 with class 1 (lower index ranks first) and 0.9 on class 5 → rank 2
  0.0, 0.5, 0.0, 0.5, 0.0, 0.9,
  // row 3, true 1: lowest score of all → rank 5: misses top-5
  0.5, 0.0, 0.4, 0.3, 0.2, 0.1,
]);
const labels = [2, 0, 3, 1];

describe("metrics", () => {
  it("top-k accuracy with ties to the lower class index", () => {
    expect(topKAccuracy(scores, labels, 1, 6)).toBe(1 / 4);
    expect(topKAccuracy(scores, labels, 2, 6)).toBe(1 / 4);
    expect(topKAccuracy(scores, labels, 3, 6)).toBe(3 / 4);
    expect(topKAccuracy(scores, labels, 5, 6)).toBe(3 / 4);
    expect(topKAccuracy(scores, labels, 6, 6)).toBe(1);
    const t = tf.tensor2d(scores, [4, 6]);
    expect(topKAccuracy(t, labels, 3)).toBe(3 / 4);
    expect(Array.from(predictClasses(t))).toEqual([2, 5, 5, 0]);
    t.dispose();
  });

  it("confusion matrix, per-class and mean per-class accuracy", () => {
    const truth = [0, 0, 0, 1, 1, 2];
    const pred = [0, 1, 0, 1, 1, 0];
    const cm = confusionMatrix(truth, pred, 4);
    // rows = truth: class 0 → [2, 1, 0, 0]; class 1 → [0, 2, 0, 0]; class 2 → [1, 0, 0, 0]; class 3 empty.
    expect(Array.from(cm.counts)).toEqual([2, 1, 0, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    const pc = perClassAccuracy(cm);
    expect(Array.from(pc.subarray(0, 3))).toEqual([2 / 3, 1, 0]);
    expect(pc[3]).toBeNaN();
    expect(meanPerClassAccuracy(cm)).toBeCloseTo((2 / 3 + 1 + 0) / 3, 15);
    expect(accuracy(truth, pred)).toBe(4 / 6);
  });

  it("rejects unlabeled rows and mismatched sizes", () => {
    expect(() => topKAccuracy(scores, [2, 0, -1, 1], 1, 6)).toThrow(/labels\[2\].*unlabeled/);
    expect(() => topKAccuracy(scores, [2, 0], 1, 6)).toThrow(ShapeError);
    expect(() => confusionMatrix([0, 1], [0, 7], 3)).toThrow(/predictions\[1\]/);
    expect(() => topKAccuracy(scores, labels, 0, 6)).toThrow(ConfigError);
  });

  it("renders the confusion matrix as a PNG whose cells carry the row-normalised colour", () => {
    const cm = confusionMatrix([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1, 0, 2], 3);
    const bytes = renderConfusionMatrixPng(cm, { cellSize: 20 });
    const png = PNG.sync.read(Buffer.from(bytes));
    expect(png.width).toBe(png.height);
    const margin = png.width - 1 - 3 * 20;
    const pixel = (t: number, p: number) => {
      const x = margin + p * 20 + 10;
      const y = margin + t * 20 + 10;
      const o = (y * png.width + x) * 4;
      return [png.data[o], png.data[o + 1], png.data[o + 2]];
    };
    // Full rows (fraction 1) are the darkest ramp colour, empty cells the lightest,
    // 3/4 and 1/2 lie in between and get darker with the fraction.
    expect(pixel(1, 1)).toEqual([8, 48, 107]);
    expect(pixel(0, 2)).toEqual([247, 251, 255]);
    const lum = ([r, g, b]: number[]) => r + g + b;
    expect(lum(pixel(0, 0))).toBeLessThan(lum(pixel(2, 0)));
    expect(lum(pixel(2, 0))).toBeLessThan(lum(pixel(0, 1)));
    expect(lum(pixel(0, 1))).toBeLessThan(lum(pixel(0, 2)));
    // Some dark ink in the left margin (the class indices).
    let ink = 0;
    for (let y = margin; y < png.height; y++)
      for (let x = 0; x < margin; x++) if (png.data[(y * png.width + x) * 4] < 100) ink++;
    expect(ink).toBeGreaterThan(10);
  });
});
