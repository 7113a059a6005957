import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "@sit/core";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { GmmlMasker, drawGmmlGrid } from "./index";
import { renderGmmlGrid, writeGmmlGrid } from "./node";

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

function normalisedBatch(
  B: number,
  size: number,
): { data: Float32Array; shape: [number, number, number, number] } {
  const data = new Float32Array(B * size * size * 3);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++)
        for (let c = 0; c < 3; c++) {
          const raw = c === 0 ? x / (size - 1) : c === 1 ? y / (size - 1) : b / Math.max(1, B - 1);
          data[((b * size + y) * size + x) * 3 + c] = (raw - MEAN[c]) / STD[c];
        }
  return { data, shape: [B, size, size, 3] };
}

describe("renderGmmlGrid", () => {
  it("draws original | mask | corrupted per row, un-normalised", () => {
    const B = 2;
    const S = 8;
    const images = normalisedBatch(B, S);
    const result = new GmmlMasker({ maxBlockFraction: 0.5 }).apply(images, Rng.seed(3));
    const options = { scale: 1, padding: 2 };
    const bytes = renderGmmlGrid(images, result.pixelMask, result.corrupted, options);
    const png = PNG.sync.read(Buffer.from(bytes));
    // The PNG holds drawGmmlGrid's pixels (the main entry's, which a page draws on a canvas).
    const drawn = drawGmmlGrid(images, result.pixelMask, result.corrupted, options);
    expect([drawn.width, drawn.height]).toEqual([png.width, png.height]);
    const rgb = png.data.filter((_, i) => i % 4 !== 3);
    expect(Buffer.from(drawn.data).equals(Buffer.from(rgb))).toBe(true);
    expect(png.width).toBe(3 * S + 4 * 2);
    expect(png.height).toBe(B * S + 3 * 2);
    const px = (x: number, y: number) =>
      Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 3));
    for (let b = 0; b < B; b++)
      for (let y = 0; y < S; y++)
        for (let x = 0; x < S; x++) {
          const top = 2 + b * (S + 2) + y;
          const p = (b * S + y) * S + x;
          // Original: the raw colour the test normalised.
          const raw = [x / (S - 1), y / (S - 1), b / (B - 1)].map((v) => Math.round(v * 255));
          expect(px(2 + x, top)).toEqual(raw);
          const m = result.pixelMask.data[p] ? 255 : 0;
          expect(px(2 + S + 2 + x, top)).toEqual([m, m, m]);
          const corrupted = [0, 1, 2].map((c) =>
            Math.min(
              255,
              Math.max(0, Math.round((result.corrupted.data[p * 3 + c] * STD[c] + MEAN[c]) * 255)),
            ),
          );
          expect(px(2 + 2 * (S + 2) + x, top)).toEqual(corrupted);
          // Zeros fill shows the mean colour.
          if (result.pixelMask.data[p] && result.images[b].kind === "blocks")
            expect(corrupted).toEqual(MEAN.map((v) => Math.round(v * 255)));
        }
  });

  it("writes the PNG atomically and checks its input", () => {
    const images = normalisedBatch(3, 16);
    const result = new GmmlMasker().apply(images, Rng.seed(1));
    const dir = mkdtempSync(join(tmpdir(), "gmml-grid-"));
    try {
      const path = join(dir, "sub", "grid.png");
      writeGmmlGrid(path, images, result.pixelMask, result.corrupted, { maxImages: 2 });
      const bytes = readFileSync(path);
      expect(
        bytes.equals(renderGmmlGrid(images, result.pixelMask, result.corrupted, { maxImages: 2 })),
      ).toBe(true);
      // Default scale makes 16 px cells 96 px tall; two rows shown.
      expect(PNG.sync.read(bytes).height).toBe(2 * 96 + 3 * 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => renderGmmlGrid(images, result.pixelMask, normalisedBatch(2, 16))).toThrow(
      /corrupted: expected shape/,
    );
    expect(() =>
      renderGmmlGrid(images, { data: new Uint8Array(4), shape: [1, 2, 2] }, result.corrupted),
    ).toThrow(/mask.shape/);
    expect(() =>
      renderGmmlGrid(images, result.pixelMask, result.corrupted, { mean: [0.5, 0.5] }),
    ).toThrow(/mean: expected a number or 3/);
  });
});
