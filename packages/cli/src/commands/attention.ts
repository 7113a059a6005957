import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { startBackend } from "../backend";
import { type CliIO, UsageError, note } from "../io";
import { backboneOf, inputSize, loadModel } from "../model";
import { type RgbImage, heatMap, toRgbImages, writeGrid } from "../png";
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
  step: number;
}

/**
 * `sit attention`: a PNG with one row per image — the image, then the attention of the CLS token
 * to every patch in the chosen block (the last by default), one column per head, then the mean
 * over heads. Each map is min–max scaled on its own (heat colours: dark = low).
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
    const { images } = await pictureBatch(model, options.split, options.count, size);
    const shape = images.shape as [number, number, number, number];
    const [B, H, W] = shape;
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
    const originals = toRgbImages(images.dataSync() as Float32Array, shape, model.run.stats);
    const n = gh * gw;
    const rows: RgbImage[][] = originals.map((img, i) => {
      const row: RgbImage[] = [img];
      const mean = new Float32Array(n);
      for (let h = 0; h < heads; h++) {
        const map = values.subarray((i * heads + h) * n, (i * heads + h + 1) * n);
        for (let p = 0; p < n; p++) mean[p] += map[p] / heads;
        row.push(heatMap(map, gh, gw, H, W));
      }
      row.push(heatMap(mean, gh, gw, H, W));
      return row;
    });
    const path = resolve(options.out);
    mkdirSync(dirname(path), { recursive: true });
    writeGrid(path, rows);
    tf.dispose([images, clsRows]);
    note(
      io,
      `[sit] CLS attention of block ${block} (${heads} heads + mean) for ${B} ${options.split} images (weights after ${model.step} steps)`,
    );
    return { path, images: B, heads, block, step: model.step };
  } finally {
    model.recipe.dispose();
  }
}
