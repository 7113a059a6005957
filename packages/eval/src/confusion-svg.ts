import { ConfigError, type TextOptions, checkNumber, svgText } from "@sit/core";
import type { ConfusionMatrix } from "./metrics";

/** Options of {@link confusionMatrixSvg} (and of `renderConfusionMatrixPng` in @sit/eval/node). */
export interface ConfusionPngOptions {
  /** Side of one cell in pixels. Default: 720 / classes, clamped to [12, 48]. */
  cellSize?: number;
  /**
   * `row` (default): each row divided by its total, so colour = fraction of that class predicted
   * as each column (readable when classes are imbalanced); `max`: counts divided by the largest count.
   */
  normalize?: "row" | "max";
  /** Names of the classes, index = label, along the axes (default: the class indices). */
  classNames?: readonly string[];
  /** Title above the matrix (default "Confusion matrix"). */
  title?: string;
  /** Write each cell's count in it (default: when cells are at least 22 px). */
  counts?: boolean;
  /** Draw class names (or indices) along the axes. Default true. */
  labels?: boolean;
}

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

function text(
  x: number,
  y: number,
  s: string,
  size: number,
  anchor: "start" | "middle" | "end",
  o: TextOptions = {},
): string {
  return svgText(x, y, s, { size, anchor, ...o });
}

/**
 * The confusion matrix as an SVG document (a string; no dependencies, viewable in a browser):
 * rows = true class (top to bottom), columns = predicted class (left to right), darker = more,
 * with the count in each cell, class names along both axes, the axis titles "true class" and
 * "predicted class", and a title.
 */
export function confusionMatrixSvg(cm: ConfusionMatrix, options: ConfusionPngOptions = {}): string {
  const c = cm.numClasses;
  checkNumber("cm.numClasses", c, { integer: true, min: 1 });
  if (cm.counts.length !== c * c)
    throw new ConfigError(
      `cm.counts: expected ${c * c} counts (numClasses²), got ${cm.counts.length}`,
    );
  const cell = checkNumber(
    "cellSize",
    options.cellSize ?? Math.min(48, Math.max(12, Math.floor(720 / c))),
    { integer: true, min: 1, max: 512 },
  );
  const normalize = options.normalize ?? "row";
  if (normalize !== "row" && normalize !== "max")
    throw new ConfigError(`normalize: expected "row" or "max", got ${JSON.stringify(normalize)}`);
  const names = options.classNames;
  if (names !== undefined && names.length !== c)
    throw new ConfigError(`classNames: expected ${c} names (one per class), got ${names.length}`);
  const label = (i: number) => names?.[i] ?? String(i);
  const drawLabels = options.labels ?? true;
  const showCounts = options.counts ?? cell >= 22;
  const size = Math.min(13, Math.max(8, Math.floor(cell * 0.45)));
  // Room for the longest name at ~0.62 em a character (DejaVu Sans), plus the axis title.
  const nameW = drawLabels
    ? Math.ceil(Math.max(...Array.from({ length: c }, (_, i) => label(i).length)) * size * 0.62)
    : 0;
  const left = 30 + nameW + 10;
  const top = Math.ceil(44 + 22 + (drawLabels ? nameW * 0.75 + 10 : 0)); // column names at −45°
  const side = c * cell;
  // The last column's name, at −45°, reaches about 0.71 of its length right of the matrix.
  const title = options.title ?? "Confusion matrix";
  const width = Math.ceil(
    Math.max(left + side + nameW * 0.72 + 16, 360, title.length * 10.5 + 24), // 16 px bold
  );
  const height = Math.ceil(top + side + 16);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    text(width / 2, 24, title, 16, "middle", { bold: true }),
    text(
      width / 2,
      42,
      `count in each cell; colour: ${normalize === "row" ? "fraction of its row (true class)" : "count ÷ largest count"}`,
      11,
      "middle",
      { fill: "#444" },
    ),
  ];
  let maxCount = 0;
  for (const v of cm.counts) maxCount = Math.max(maxCount, v);
  for (let t = 0; t < c; t++) {
    let rowTotal = 0;
    for (let p = 0; p < c; p++) rowTotal += cm.counts[t * c + p];
    for (let p = 0; p < c; p++) {
      const count = cm.counts[t * c + p];
      const denom = normalize === "row" ? rowTotal : maxCount;
      const v = denom > 0 ? count / denom : 0;
      const [r, g, b] = rampColor(v);
      const x = left + p * cell;
      const y = top + t * cell;
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="rgb(${r},${g},${b})" stroke="#c8c8c8"/>`,
      );
      if (showCounts)
        parts.push(
          text(x + cell / 2, y + cell / 2 + size * 0.35, String(count), size, "middle", {
            fill: v > 0.5 ? "white" : "#1a1a1a",
          }),
        );
    }
  }
  if (drawLabels)
    for (let i = 0; i < c; i++) {
      const centre = i * cell + cell / 2;
      parts.push(text(left - 6, top + centre + size * 0.35, label(i), size, "end"));
      const cx = left + centre + size * 0.3;
      parts.push(text(cx, top - 6, label(i), size, "start", { rotate: -45 }));
    }
  parts.push(
    text(left + side / 2, 42 + 20, "predicted class", 13, "middle", { bold: true }),
    text(16, top + side / 2, "true class", 13, "middle", { bold: true, rotate: -90 }),
    "</svg>",
  );
  return parts.join("\n");
}
