import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { NormalizeStats } from "@sit/data";
import type { VisionTransformer } from "@sit/vit";
import * as tf from "@tensorflow/tfjs";
import { startBackend } from "../backend";
import { type CliIO, UsageError, note } from "../io";
import { backboneOf, inputSize, loadModel } from "../model";
import { type Figure, type Rect, gridFigure, writeSvgAsPng } from "../figure";
import { type RgbImage, heatColor, toRgbImages } from "../png";
import { type PictureOptions, inEvalMode, pictureBatch } from "./inspect-common";

/** Options of {@link attention}. */
export interface AttentionOptions extends PictureOptions {
  /** Block whose attention is drawn (negative counts from the end; default −1, the last). */
  block?: number;
}

/** What {@link attention} wrote. */
export interface AttentionResult {
  path: string;
  images: number;
  heads: number;
  /** Index of the block drawn. */
  block: number;
  /** Top of the colour scale, in multiples of uniform attention. */
  scaleMax: number;
  /** Where each picture is in the PNG: `cells[image][column]` (image, heads…, mean). */
  cells: Rect[][];
  step: number;
}

/**
 * Attention shown as a multiple of uniform attention (1/N over N patches) on a scale shared by
 * every map of the picture, never below this many times uniform: an untrained model attends
 * almost uniformly, and stretching its ±10 % noise over the whole colour range (as per-map
 * min–max scaling does) would draw structure that is not there.
 */
export const ATTENTION_SCALE_FLOOR = 4;

/**
 * The attention map `ratios` (one value per patch, as multiples of uniform) laid over `image`:
 * the picture in grey under the heat colour of each patch, more opaque where attention is high,
 * so that what the head looks at stays recognisable.
 */
export function overlayAttention(
  image: RgbImage,
  ratios: ArrayLike<number>,
  gh: number,
  gw: number,
  scaleMax: number,
): RgbImage {
  const { height, width } = image;
  const data = new Float32Array(height * width * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const gy = Math.min(gh - 1, Math.floor((y * gh) / height));
      const gx = Math.min(gw - 1, Math.floor((x * gw) / width));
      const t = Math.min(1, Math.max(0, ratios[gy * gw + gx] / scaleMax));
      const [r, g, b] = heatColor(t);
      const o = (y * width + x) * 3;
      const grey = 0.299 * image.data[o] + 0.587 * image.data[o + 1] + 0.114 * image.data[o + 2];
      const a = 0.35 + 0.5 * t;
      data[o] = (1 - a) * grey + a * r;
      data[o + 1] = (1 - a) * grey + a * g;
      data[o + 2] = (1 - a) * grey + a * b;
    }
  return { data, height, width };
}

/** Top of the shared colour scale: the largest ratio shown, at least {@link ATTENTION_SCALE_FLOOR}. */
export function attentionScaleMax(ratios: ArrayLike<number>): number {
  let max = ATTENTION_SCALE_FLOOR;
  for (let i = 0; i < ratios.length; i++) if (ratios[i] > max) max = ratios[i];
  return max;
}

/** Tick values of a colour bar from 0 to `max` that include 1 (uniform attention). */
function ratioTicks(max: number): { value: number; label: string }[] {
  const step = max <= 5 ? 1 : max <= 12 ? 2 : max <= 30 ? 5 : max <= 60 ? 10 : 20;
  const values = new Set([0, 1]);
  for (let v = step; v <= max + 1e-9; v += step) values.add(v);
  return [...values].sort((a, b) => a - b).map((v) => ({ value: v, label: `${v}×` }));
}

/** An attention picture and its colour scale. */
export interface AttentionFigure {
  figure: Figure;
  heads: number;
  /** Top of the colour scale, in multiples of uniform attention. */
  scaleMax: number;
}

/**
 * The attention picture of `images` (NHWC, normalised; not disposed) in block `block` of
 * `backbone`: one row per image — the image, each head's CLS-token attention laid over it, the
 * mean of the heads — with a colour bar. The backbone runs in eval mode; every tensor made here
 * is disposed.
 */
export function attentionFigure(
  backbone: VisionTransformer,
  images: tf.Tensor4D,
  stats: NormalizeStats | null,
  block: number,
  o: { title: string; rowLabels?: string[] },
): AttentionFigure {
  const shape = images.shape as [number, number, number, number];
  const [, H, W] = shape;
  const [gh, gw] = [H / backbone.patchSize, W / backbone.patchSize];
  const clsRows = inEvalMode(backbone, () =>
    tf.tidy(() => {
      const att = backbone.forward(images, { attentions: true }).attentions![block];
      const [b, heads, t] = att.shape;
      // Row 0 of each head: how the CLS token attends to the patches (CLS column dropped).
      return tf.reshape(tf.slice(att, [0, 0, 0, 1], [b, heads, 1, t - 1]), [b, heads, t - 1]);
    }),
  );
  const heads = clsRows.shape[1] as number;
  const values = clsRows.dataSync() as Float32Array;
  clsRows.dispose();
  const originals = toRgbImages(images.dataSync() as Float32Array, shape, stats);
  const n = gh * gw;
  // Per image: the heads' maps and their mean, as multiples of uniform attention (1/n).
  const maps = originals.map((_, i) => {
    const perHead: Float32Array[] = [];
    const mean = new Float32Array(n);
    for (let h = 0; h < heads; h++) {
      const map = values.subarray((i * heads + h) * n, (i * heads + h + 1) * n);
      const ratios = new Float32Array(n);
      for (let p = 0; p < n; p++) {
        ratios[p] = map[p] * n;
        mean[p] += ratios[p] / heads;
      }
      perHead.push(ratios);
    }
    return [...perHead, mean];
  });
  const scaleMax = attentionScaleMax(Float32Array.from(maps.flat().flatMap((m) => [...m])));
  const rows: RgbImage[][] = originals.map((img, i) => [
    img,
    ...maps[i].map((m) => overlayAttention(img, m, gh, gw, scaleMax)),
  ]);
  const figure = gridFigure(rows, {
    title: o.title,
    subtitle: `${gh}×${gw} patches; 1× = uniform attention (1/${n}); one colour scale for every map`,
    columnTitles: [
      "image",
      ...Array.from({ length: heads }, (_, h) => `head ${h + 1}`),
      "mean of heads",
    ],
    ...(o.rowLabels ? { rowLabels: o.rowLabels } : {}),
    colorBar: {
      map: heatColor,
      min: 0,
      max: scaleMax,
      ticks: ratioTicks(scaleMax),
      title: "attention ÷ uniform",
    },
  });
  return { figure, heads, scaleMax };
}

/**
 * `sit attention`: a PNG with one row per image — the image, then the attention of the CLS token
 * to every patch in the chosen block (the last by default) laid over it, one column per head, then
 * the mean over heads. Column titles name the heads; a colour bar gives the scale, in multiples
 * of uniform attention, shared by every map (see `ATTENTION_SCALE_FLOOR`, 4).
 */
export async function attention(options: AttentionOptions, io: CliIO): Promise<AttentionResult> {
  await startBackend(options.backend, io);
  const model = await loadModel(options.checkpoint, options.data);
  try {
    const backbone = backboneOf(model, options.weights);
    const size = inputSize(backbone);
    const depth = backbone.depth;
    const requested = options.block ?? -1;
    if (!Number.isInteger(requested) || requested < -depth || requested >= depth)
      throw new UsageError(
        `--block: expected an integer in [${-depth}, ${depth - 1}], got ${requested}`,
      );
    const block = requested < 0 ? depth + requested : requested;
    const { images, labels, classNames } = await pictureBatch(
      model,
      options.split,
      options.count,
      size,
    );
    let picture: AttentionFigure;
    try {
      picture = attentionFigure(backbone, images, model.run.stats, block, {
        title: `CLS-token attention, block ${block + 1} of ${depth} (${options.weights}, ${model.step} training steps)`,
        ...(classNames ? { rowLabels: labels.map((l) => classNames[l] ?? "") } : {}),
      });
    } finally {
      images.dispose();
    }
    const { figure, heads, scaleMax } = picture;
    const B = labels.length;
    const path = resolve(options.out);
    mkdirSync(dirname(path), { recursive: true });
    await writeSvgAsPng(path, figure.svg);
    note(
      io,
      `[sit] CLS attention of block ${block} (${heads} heads + mean) for ${B} ${options.split} images (weights after ${model.step} steps)`,
    );
    return { path, images: B, heads, block, step: model.step, scaleMax, cells: figure.cells };
  } finally {
    model.recipe.dispose();
  }
}
