import type { PictureBatch } from "./protocol";

/** Normalisation to undo before display (null: the values are already in [0, 1]). */
export type Stats = { mean: readonly number[]; std: readonly number[] } | null;

/** Image `i` of an NHWC float batch as RGBA bytes, de-normalised and clamped to [0, 255]. */
export function toRgba(batch: PictureBatch, i: number, stats: Stats): Uint8ClampedArray {
  const [, H, W, C] = batch.shape;
  const out = new Uint8ClampedArray(H * W * 4);
  const base = i * H * W * C;
  for (let p = 0; p < H * W; p++) {
    for (let k = 0; k < 3; k++) {
      const c = C === 1 ? 0 : k;
      let v = batch.data[base + p * C + c];
      if (stats) v = v * stats.std[c % stats.std.length] + stats.mean[c % stats.mean.length];
      out[4 * p + k] = v * 255;
    }
    out[4 * p + 3] = 255;
  }
  return out;
}

/** A pixel mask (1 = corrupted) as RGBA: corrupted pixels white, the rest black. */
export function maskToRgba(mask: Uint8Array, offset: number, H: number, W: number) {
  const out = new Uint8ClampedArray(H * W * 4);
  for (let p = 0; p < H * W; p++) {
    const v = mask[offset + p] ? 255 : 0;
    out.set([v, v, v, 255], 4 * p);
  }
  return out;
}

/**
 * A canvas showing `rgba` (H × W) scaled up by `scale` with crisp pixels, so that 28 px images stay
 * readable. `label` becomes its accessible name and tooltip.
 */
export function imageCanvas(
  rgba: Uint8ClampedArray,
  H: number,
  W: number,
  scale: number,
  label: string,
): HTMLCanvasElement {
  const small = new OffscreenCanvas(W, H);
  small
    .getContext("2d")!
    .putImageData(new ImageData(rgba as Uint8ClampedArray<ArrayBuffer>, W, H), 0, 0);
  const canvas = document.createElement("canvas");
  canvas.width = W * scale;
  canvas.height = H * scale;
  canvas.title = label;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  const ctx = canvas.getContext("2d")!;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  return canvas;
}

/**
 * Heat colour of `t` in [0, 1]: black → red → yellow → white (a perceptually ordered ramp that
 * stays readable over a grey picture).
 */
export function heatColor(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t));
  return [Math.min(1, 3 * x), Math.min(1, Math.max(0, 3 * x - 1)), Math.max(0, 3 * x - 2)];
}

/**
 * Attention never drawn as stronger than this many times uniform at the top of the scale: an
 * untrained network attends almost uniformly, and stretching its noise over the whole colour range
 * would draw structure that is not there (the same floor as `sit attention`'s pictures).
 */
export const ATTENTION_SCALE_FLOOR = 4;

/**
 * `rgba` in grey with the attention map (`ratios`: one value per patch of a gh × gw grid, as
 * multiples of uniform attention) laid over it in heat colours, more opaque where attention is
 * high, so that what the CLS token looks at stays recognisable.
 */
export function overlayAttention(
  rgba: Uint8ClampedArray,
  H: number,
  W: number,
  ratios: Float32Array,
  grid: [number, number],
  scaleMax: number,
): Uint8ClampedArray {
  const [gh, gw] = grid;
  const out = new Uint8ClampedArray(rgba.length);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const p = y * W + x;
      const cell =
        Math.min(gh - 1, Math.floor((y * gh) / H)) * gw +
        Math.min(gw - 1, Math.floor((x * gw) / W));
      const t = Math.min(1, ratios[cell] / scaleMax);
      const [r, g, b] = heatColor(t);
      const grey = 0.299 * rgba[4 * p] + 0.587 * rgba[4 * p + 1] + 0.114 * rgba[4 * p + 2];
      const a = 0.35 + 0.5 * t;
      out[4 * p] = (1 - a) * grey + a * 255 * r;
      out[4 * p + 1] = (1 - a) * grey + a * 255 * g;
      out[4 * p + 2] = (1 - a) * grey + a * 255 * b;
      out[4 * p + 3] = 255;
    }
  return out;
}

/**
 * A figure: a captioned grid of canvases, one titled row per kind of picture (original, corrupted…)
 * and one column per image, so that a batch reads left to right.
 */
export function pictureGrid(
  rows: Array<{ title: string; canvases: HTMLCanvasElement[] }>,
  caption: string,
): HTMLElement {
  const figure = document.createElement("figure");
  const table = document.createElement("table");
  table.className = "grid";
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = row.title;
    tr.appendChild(th);
    for (const canvas of row.canvases) tr.insertCell().appendChild(canvas);
  }
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  figure.append(table, cap);
  return figure;
}
