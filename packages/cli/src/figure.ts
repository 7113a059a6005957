import { ConfigError, svgText } from "@sit/core";
import { writeFileAtomic } from "@sit/core/node";
import type { RgbImage } from "@sit/eval";
import { renderGrid } from "./png";

/**
 * Pictures with words on them: the layout is SVG (titles, labels, colour bars as text and
 * shapes; the pictures as embedded PNGs at their final pixel size, so nothing is resampled), and
 * sharp rasterises it with librsvg, which draws the text with a real font from the system's
 * fontconfig (DejaVu Sans on Debian). No hand-drawn glyphs.
 */

// Widths of an average character in DejaVu Sans (generous: layouts must not clip the text).
const CHAR_WIDTH_12 = 8;
const CHAR_WIDTH_13 = 8.4;
const CHAR_WIDTH_17_BOLD = 12;

/** Width in pixels that a line of text is given in a layout (an upper estimate). */
function textWidth(text: string, charWidth: number): number {
  return Math.ceil(text.length * charWidth);
}

/** A picture enlarged `scale` times (nearest neighbour, so pixels stay visible) at (x, y). */
export function svgRaster(img: RgbImage, x: number, y: number, scale: number): string {
  const png = renderGrid([[img]], { scale, padding: 0 }).toString("base64");
  return (
    `<image x="${x}" y="${y}" width="${img.width * scale}" height="${img.height * scale}"` +
    ` xlink:href="data:image/png;base64,${png}"/>`
  );
}

/** A colour map: a value in [0, 1] to RGB in [0, 1]. */
export type ColorMap = (v: number) => readonly [number, number, number];

/** An `rgb()` colour from components in [0, 1]. */
export function cssColor([r, g, b]: readonly [number, number, number]): string {
  const c = (v: number) => Math.round(Math.min(1, Math.max(0, v)) * 255);
  return `rgb(${c(r)},${c(g)},${c(b)})`;
}

/** Options of {@link svgColorBar}. */
export interface ColorBarOptions {
  /** Value at the bottom and at the top of the bar. */
  min: number;
  max: number;
  /** Values to mark with a tick and a label. */
  ticks: { value: number; label: string }[];
  /** Title, written vertically beside the bar. */
  title: string;
}

/** A vertical colour bar (low at the bottom) with ticks on its right and a title beyond them. */
export function svgColorBar(
  map: ColorMap,
  x: number,
  y: number,
  width: number,
  height: number,
  o: ColorBarOptions,
): string {
  if (!(o.max > o.min))
    throw new ConfigError(`colour bar: expected max > min, got min ${o.min}, max ${o.max}`);
  const stops = Array.from({ length: 17 }, (_, i) => {
    const t = i / 16;
    return `<stop offset="${(100 * t).toFixed(2)}%" stop-color="${cssColor(map(1 - t))}"/>`;
  }).join("");
  const id = `bar${Math.round(x)}x${Math.round(y)}`;
  const parts = [
    `<defs><linearGradient id="${id}" x1="0" y1="0" x2="0" y2="1">${stops}</linearGradient></defs>`,
    `<rect x="${x}" y="${y}" width="${width}" height="${height}" fill="url(#${id})" stroke="#666"/>`,
  ];
  for (const t of o.ticks) {
    const ty = y + height - ((t.value - o.min) / (o.max - o.min)) * height;
    parts.push(
      `<line x1="${x + width}" y1="${ty}" x2="${x + width + 5}" y2="${ty}" stroke="#333"/>`,
    );
    parts.push(svgText(x + width + 8, ty + 4, t.label, { size: 12, anchor: "start" }));
  }
  // Rotated by −90°, the title's glyphs lie left of its baseline: leave them a font size of room.
  const labelWidth = Math.max(...o.ticks.map((t) => t.label.length)) * CHAR_WIDTH_12;
  parts.push(
    svgText(x + width + 14 + labelWidth + 14, y + height / 2, o.title, {
      size: 13,
      rotate: -90,
      fill: "#333",
    }),
  );
  return parts.join("\n");
}

/** An SVG document of `width × height` on a white background. */
export function svgDocument(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"`,
    ` width="${Math.ceil(width)}" height="${Math.ceil(height)}" viewBox="0 0 ${Math.ceil(width)} ${Math.ceil(height)}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...body,
    "</svg>",
  ].join("\n");
}

/** Rasterise an SVG document to RGB PNG bytes with sharp (librsvg; text in a real font). */
export async function svgToPng(svg: string): Promise<Buffer> {
  const { default: sharp } = await import("sharp");
  // density 72: one SVG unit = one pixel. flatten: no alpha channel (the figures are opaque).
  return sharp(Buffer.from(svg), { density: 72 })
    .flatten({ background: "#ffffff" })
    .png()
    .toBuffer();
}

/** {@link svgToPng}, written atomically to `path`. */
export async function writeSvgAsPng(path: string, svg: string): Promise<void> {
  writeFileAtomic(path, await svgToPng(svg));
}

/** Options of {@link gridFigure}. */
export interface GridFigureOptions {
  /** The figure's title (first line, bold). */
  title: string;
  /** Second line under the title: what the numbers mean. */
  subtitle?: string;
  /** One title per column, above it. */
  columnTitles: string[];
  /** One label per row, left of it (e.g. the class name). */
  rowLabels?: string[];
  /** Integer enlargement of every picture (default: enough for pictures ≥ 96 px). */
  scale?: number;
  /** A colour bar on the right. */
  colorBar?: ColorBarOptions & { map: ColorMap };
}

/** A rectangle in a figure, in pixels from its top-left corner. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A laid-out figure: its SVG, its size and where each picture of the grid went. */
export interface Figure {
  svg: string;
  width: number;
  height: number;
  /** `cells[row][column]`: the rectangle of each picture (integer pixels). */
  cells: Rect[][];
}

/**
 * A grid of equally sized pictures (rows × columns) with a title, a title over every column,
 * optional row labels and an optional colour bar.
 */
export function gridFigure(rows: RgbImage[][], o: GridFigureOptions): Figure {
  if (rows.length === 0 || rows[0].length === 0)
    throw new ConfigError("rows: expected at least one row with one picture, got none");
  const { height: H, width: W } = rows[0][0];
  for (const r of rows)
    for (const img of r)
      if (img.height !== H || img.width !== W)
        throw new ConfigError(
          `rows: expected pictures of ${H}×${W}, got ${img.height}×${img.width}`,
        );
  const cols = Math.max(...rows.map((r) => r.length));
  if (o.columnTitles.length !== cols)
    throw new ConfigError(
      `columnTitles: expected ${cols} titles (one per column), got ${o.columnTitles.length}`,
    );
  const scale = o.scale ?? Math.max(1, Math.ceil(96 / H));
  const cw = W * scale;
  const ch = H * scale;
  const gap = 6;
  // Long column titles need wider gaps than the pictures leave: 7 px a character at 13 px.
  // Bold column titles need about 8.4 px a character at 13 px: wider than small pictures.
  const colW = Math.max(cw, ...o.columnTitles.map((t) => textWidth(t, CHAR_WIDTH_13))) + gap;
  const rowLabelW = o.rowLabels
    ? Math.max(...o.rowLabels.map((l) => textWidth(l, CHAR_WIDTH_13))) + 14
    : 0;
  const gridW = cols * colW;
  const barW = o.colorBar
    ? 10 +
      18 +
      14 +
      Math.max(...o.colorBar.ticks.map((t) => textWidth(t.label, CHAR_WIDTH_12))) +
      24
    : 0;
  const contentW = rowLabelW + gridW + barW;
  const width = Math.max(
    contentW + 24,
    textWidth(o.title, CHAR_WIDTH_17_BOLD) + 24,
    o.subtitle ? textWidth(o.subtitle, CHAR_WIDTH_13) + 24 : 0,
  );
  // The grid (with its labels and bar) is centred under the title.
  const left = Math.floor((width - contentW) / 2) + rowLabelW;
  const top = (o.subtitle ? 58 : 38) + 22;
  const height = top + rows.length * (ch + gap) + 8;
  const body: string[] = [svgText(width / 2, 24, o.title, { size: 17, bold: true })];
  if (o.subtitle) body.push(svgText(width / 2, 46, o.subtitle, { size: 13, fill: "#444" }));
  o.columnTitles.forEach((t, c) => {
    body.push(svgText(left + c * colW + colW / 2, top - 8, t, { size: 13, bold: true }));
  });
  const cells = rows.map((row, r) => {
    const y = top + r * (ch + gap);
    if (o.rowLabels)
      body.push(
        svgText(left - 8, y + ch / 2 + 5, o.rowLabels[r] ?? "", { anchor: "end", size: 13 }),
      );
    return row.map((img, c) => {
      const x = left + c * colW + Math.floor((colW - cw) / 2);
      body.push(svgRaster(img, x, y, scale));
      return { x, y, width: cw, height: ch };
    });
  });
  if (o.colorBar) {
    const { map, ...bar } = o.colorBar;
    const barH = Math.min(rows.length * (ch + gap) - gap, 360);
    body.push(svgColorBar(map, left + gridW + 10, top, 18, barH, bar));
  }
  return { svg: svgDocument(width, height, body), width, height, cells };
}
