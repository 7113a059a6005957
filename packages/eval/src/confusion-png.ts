import { ConfigError, checkNumber, writeFileAtomic } from "@sit/core";
import { PNG } from "pngjs";
import type { ConfusionMatrix } from "./metrics";

/** Options of {@link renderConfusionMatrixPng}. */
export interface ConfusionPngOptions {
  /** Side of one cell in pixels. Default 24. */
  cellSize?: number;
  /**
   * `row` (default): each row divided by its total, so colour = fraction of that class predicted
   * as each column (readable when classes are imbalanced); `max`: counts divided by the largest count.
   */
  normalize?: "row" | "max";
  /** Draw class indices along the axes (3×5 pixel digits, scaled). Default true. */
  labels?: boolean;
}

// 3×5 bitmap digits, one row per string, '#' = ink. Our own glyphs (no font dependency).
const DIGITS: string[][] = [
  ["###", "#.#", "#.#", "#.#", "###"],
  [".#.", "##.", ".#.", ".#.", "###"],
  ["###", "..#", "###", "#..", "###"],
  ["###", "..#", "###", "..#", "###"],
  ["#.#", "#.#", "###", "..#", "..#"],
  ["###", "#..", "###", "..#", "###"],
  ["###", "#..", "###", "#.#", "###"],
  ["###", "..#", ".#.", ".#.", ".#."],
  ["###", "#.#", "###", "#.#", "###"],
  ["###", "#.#", "###", "..#", "###"],
];

// White → dark blue ramp (the look of matplotlib's "Blues"), linear in RGB between stops.
const RAMP: [number, number, number][] = [
  [247, 251, 255],
  [198, 219, 239],
  [107, 174, 214],
  [33, 113, 181],
  [8, 48, 107],
];

function rampColor(v: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, v)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const a = RAMP[i];
  const b = RAMP[i + 1];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)) as [number, number, number];
}

/**
 * Render a confusion matrix as a PNG heat map (rows = true class, top to bottom; columns =
 * predicted class, left to right; darker = more), with class indices along the left and top
 * edges. Returns the PNG file's bytes.
 */
export function renderConfusionMatrixPng(
  cm: ConfusionMatrix,
  options: ConfusionPngOptions = {},
): Uint8Array {
  const c = cm.numClasses;
  checkNumber("cm.numClasses", c, { integer: true, min: 1 });
  if (cm.counts.length !== c * c)
    throw new ConfigError(
      `cm.counts: expected ${c * c} counts (numClasses²), got ${cm.counts.length}`,
    );
  const cell = checkNumber("cellSize", options.cellSize ?? 24, { integer: true, min: 1, max: 512 });
  const normalize = options.normalize ?? "row";
  if (normalize !== "row" && normalize !== "max")
    throw new ConfigError(`normalize: expected "row" or "max", got ${JSON.stringify(normalize)}`);
  const drawLabels = options.labels ?? true;
  const digitsMax = String(c - 1).length;
  const scale = Math.max(1, Math.min(3, Math.floor(cell / 8)));
  const glyphW = 3 * scale;
  const glyphH = 5 * scale;
  const margin = drawLabels ? Math.max(glyphH, digitsMax * (glyphW + scale)) + 2 * scale + 2 : 0;
  const size = margin + c * cell + 1;
  if (size > 16384)
    throw new ConfigError(`cellSize: image would be ${size} px wide; use a smaller cellSize`);
  const png = new PNG({ width: size, height: size });
  png.data.fill(255);

  const put = (x: number, y: number, rgb: readonly number[]): void => {
    const o = (y * size + x) * 4;
    png.data[o] = rgb[0];
    png.data[o + 1] = rgb[1];
    png.data[o + 2] = rgb[2];
    png.data[o + 3] = 255;
  };

  let maxCount = 0;
  for (const v of cm.counts) maxCount = Math.max(maxCount, v);
  for (let t = 0; t < c; t++) {
    let rowTotal = 0;
    for (let p = 0; p < c; p++) rowTotal += cm.counts[t * c + p];
    for (let p = 0; p < c; p++) {
      const count = cm.counts[t * c + p];
      const denom = normalize === "row" ? rowTotal : maxCount;
      const rgb = rampColor(denom > 0 ? count / denom : 0);
      const x0 = margin + p * cell;
      const y0 = margin + t * cell;
      for (let y = 0; y < cell; y++) for (let x = 0; x < cell; x++) put(x0 + x, y0 + y, rgb);
    }
  }
  // Grid lines in light grey so that empty cells stay distinguishable.
  const grid = [200, 200, 200];
  for (let i = 0; i <= c; i++) {
    const o = margin + i * cell;
    for (let k = margin; k < size; k++) {
      put(Math.min(o, size - 1), k, grid);
      put(k, Math.min(o, size - 1), grid);
    }
  }
  if (drawLabels) {
    const ink = [40, 40, 40];
    const drawNumber = (n: number, right: number, top: number): void => {
      const s = String(n);
      let x = right - s.length * (glyphW + scale) + scale;
      for (const ch of s) {
        const g = DIGITS[ch.charCodeAt(0) - 48];
        for (let gy = 0; gy < 5; gy++)
          for (let gx = 0; gx < 3; gx++)
            if (g[gy][gx] === "#")
              for (let sy = 0; sy < scale; sy++)
                for (let sx = 0; sx < scale; sx++)
                  put(x + gx * scale + sx, top + gy * scale + sy, ink);
        x += glyphW + scale;
      }
    };
    for (let i = 0; i < c; i++) {
      const centre = margin + i * cell + Math.floor(cell / 2);
      // Row labels: right-aligned left of the grid; column labels: centred above it.
      drawNumber(i, margin - scale - 1, Math.max(0, centre - Math.floor(glyphH / 2)));
      const w = String(i).length * (glyphW + scale) - scale;
      drawNumber(
        i,
        Math.min(size - 1, centre + Math.ceil(w / 2)),
        Math.max(0, margin - glyphH - scale - 1),
      );
    }
  }
  return new Uint8Array(PNG.sync.write(png));
}

/** Render with {@link renderConfusionMatrixPng} and write the file atomically. */
export function writeConfusionMatrixPng(
  path: string,
  cm: ConfusionMatrix,
  options: ConfusionPngOptions = {},
): void {
  writeFileAtomic(path, renderConfusionMatrixPng(cm, options));
}
