import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { NormalizeStats } from "@sit/data";
import type { VisionTransformer } from "@sit/vit";
import type * as tf from "@tensorflow/tfjs";
import { startBackend } from "../backend";
import { type CliIO, UsageError, note } from "../io";
import { backboneOf, inputSize, loadModel } from "../model";
import { type Figure, type Rect, gridFigure, writeSvgAsPng } from "../figure";
import {
  type RgbImage,
  attentionMaps,
  attentionScaleMax,
  clsAttention,
  heatColor,
  overlayAttention,
  toRgbImages,
} from "@sit/eval";
import { type PictureOptions, pictureBatch } from "./inspect-common";

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
  const ratios = clsAttention(backbone, images, block);
  const ratioShape = ratios.shape;
  const [, heads, n] = ratioShape;
  const values = ratios.dataSync() as Float32Array;
  ratios.dispose();
  const originals = toRgbImages(images.dataSync() as Float32Array, shape, stats);
  // Per image: the heads' maps and their mean, as multiples of uniform attention (1/n).
  const maps = attentionMaps(values, ratioShape);
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
