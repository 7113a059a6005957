import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError } from "@sit/core";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { renderConfusionMatrixPng } from "./confusion-png";
import { confusionMatrixSvg } from "./confusion-svg";
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

  it("renders the confusion matrix as a PNG: row-normalised colours, counts, class names and axis titles in a real font", async () => {
    const cm = confusionMatrix([0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1, 0, 2], 3);
    const classNames = ["cat", "dog", "ship"];
    const svg = confusionMatrixSvg(cm, { cellSize: 40, classNames, title: "Probe" });
    for (const t of ["Probe", "predicted class", "true class", ...classNames])
      expect(svg).toContain(`>${t}</text>`);
    // Each cell's count is written in it.
    for (const n of ["3", "1", "0", "2"]) expect(svg).toContain(`>${n}</text>`);
    const png = PNG.sync.read(
      Buffer.from(await renderConfusionMatrixPng(cm, { cellSize: 40, classNames })),
    );
    // The cells, in order (row-major), from the SVG's layout.
    const cells = [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="40"/g)].map((m) => ({
      x: Number(m[1]),
      y: Number(m[2]),
    }));
    expect(cells).toHaveLength(9);
    // Sample 4 px inside a cell's corner, away from its count.
    const pixel = (t: number, p: number) => {
      const { x, y } = cells[t * 3 + p];
      const o = ((y + 4) * png.width + x + 4) * 4;
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
    // Glyphs were drawn: dark ink left of the matrix (class names, axis title) and a count's
    // dark digits in the centre of a light cell.
    const { x: x0, y: y0 } = cells[0];
    let ink = 0;
    for (let y = y0; y < y0 + 120; y++)
      for (let x = 0; x < x0; x++) if (png.data[(y * png.width + x) * 4] < 100) ink++;
    expect(ink).toBeGreaterThan(50);
    let digits = 0;
    const { x: cx, y: cy } = cells[2]; // count 0 on white
    for (let y = cy + 10; y < cy + 30; y++)
      for (let x = cx + 10; x < cx + 30; x++) if (png.data[(y * png.width + x) * 4] < 100) digits++;
    expect(digits).toBeGreaterThan(5);
    expect(() => confusionMatrixSvg(cm, { classNames: ["a"] })).toThrow(
      /classNames: expected 3 names .*got 1/,
    );
  });
});
