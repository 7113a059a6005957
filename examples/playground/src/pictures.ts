import { type RgbImage, toRgbImages } from "@sit/eval";
import type { PictureBatch } from "./protocol";

/** Normalisation to undo before display (null: the values are already in [0, 1]). */
export type Stats = { mean: readonly number[]; std: readonly number[] } | null;

/** A picture of @sit/eval (RGB in [0, 1]) as canvas bytes (RGBA). */
export function rgbaOf(image: RgbImage): Uint8ClampedArray {
  const n = image.height * image.width;
  const out = new Uint8ClampedArray(n * 4);
  for (let p = 0; p < n; p++) {
    out[4 * p] = image.data[3 * p] * 255;
    out[4 * p + 1] = image.data[3 * p + 1] * 255;
    out[4 * p + 2] = image.data[3 * p + 2] * 255;
    out[4 * p + 3] = 255;
  }
  return out;
}

/** Every image of an NHWC float batch as canvas bytes, de-normalised (as `sit` draws them). */
export function batchRgba(batch: PictureBatch, stats: Stats): Uint8ClampedArray[] {
  return toRgbImages(batch.data, batch.shape, stats).map(rgbaOf);
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
