import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Rng } from "@sit/core";
import { maskingResultToTensors } from "@sit/gmml";
import * as tf from "@tensorflow/tfjs";
import { startBackend } from "../backend";
import { type CliIO, note } from "../io";
import { inputSize, loadModel } from "../model";
import { type Rect, gridFigure, writeSvgAsPng } from "../figure";
import { toRgbImages } from "../png";
import { reconstructionParts } from "../recipes";
import { type PictureOptions, inEvalMode, pictureBatch } from "./inspect-common";

/** Options of {@link reconstruct}. */
export interface ReconstructOptions extends PictureOptions {
  /** Seed of the GMML corruption drawn for the picture. */
  seed: number;
}

/** What {@link reconstruct} wrote. */
export interface ReconstructResult {
  path: string;
  images: number;
  /** Fraction of pixels corrupted, over the shown images. */
  maskedFraction: number;
  /** Mean |x̂ − x| over the corrupted pixels (normalised units): the recipe's reconstruction loss on these images. */
  maskedL1: number;
  /** Training steps behind the weights. */
  step: number;
  /** Where each picture is in the PNG: `cells[image][column]` (original, corrupted, reconstruction). */
  cells: Rect[][];
}

/**
 * `sit reconstruct`: a PNG with one row per image — original | GMML-corrupted | reconstruction —
 * un-normalised for viewing. The corruption is drawn with the run's GMML settings (including the
 * paste from another image of the shown batch) from `seed`; the network runs in eval mode.
 */
export async function reconstruct(
  options: ReconstructOptions,
  io: CliIO,
): Promise<ReconstructResult> {
  await startBackend(options.backend, io);
  const model = await loadModel(options.checkpoint, options.data);
  try {
    const { network, masker } = reconstructionParts(model.recipe, options.weights);
    const size = inputSize(network.backbone);
    const { images, labels, classNames } = await pictureBatch(
      model,
      options.split,
      options.count,
      size,
    );
    const shape = images.shape as [number, number, number, number];
    const masked = masker.apply(images, Rng.seed(options.seed));
    const t = maskingResultToTensors(masked);
    const rec = inEvalMode(network, () =>
      tf.tidy(() => network.forward(t.corrupted).reconstruction as tf.Tensor4D),
    );
    const clean = images.dataSync() as Float32Array;
    const recon = rec.dataSync() as Float32Array;
    const corrupted = t.corrupted.dataSync() as Float32Array;
    const [B, H, W, C] = shape;
    let sum = 0;
    let count = 0;
    for (let p = 0; p < B * H * W; p++)
      if (masked.pixelMask.data[p])
        for (let c = 0; c < C; c++) {
          sum += Math.abs(recon[p * C + c] - clean[p * C + c]);
          count++;
        }
    const stats = model.run.stats;
    const cols = [clean, corrupted, recon].map((d) => toRgbImages(d, shape, stats));
    const rows = cols[0].map((_, i) => cols.map((c) => c[i]));
    tf.dispose([images, rec, t.corrupted, t.pixelMask, ...(t.tokenMask ? [t.tokenMask] : [])]);
    const result: Omit<ReconstructResult, "cells"> = {
      path: resolve(options.out),
      images: B,
      maskedFraction: count / C / (B * H * W),
      maskedL1: count > 0 ? sum / count : 0,
      step: model.step,
    };
    const figure = gridFigure(rows, {
      title: `GMML reconstruction (${options.weights}, ${model.step} training steps)`,
      subtitle: `${(100 * result.maskedFraction).toFixed(1)} % of pixels corrupted (seed ${options.seed}); mean |x̂ − x| on them ${result.maskedL1.toFixed(3)} (normalised units)`,
      columnTitles: ["original", "corrupted", "reconstruction"],
      ...(classNames ? { rowLabels: labels.map((l) => classNames[l] ?? "") } : {}),
    });
    mkdirSync(dirname(result.path), { recursive: true });
    await writeSvgAsPng(result.path, figure.svg);
    note(
      io,
      `[sit] reconstruction of ${B} ${options.split} images (weights after ${model.step} steps, ${(100 * result.maskedFraction).toFixed(1)} % of pixels corrupted, masked L1 ${result.maskedL1.toFixed(4)})`,
    );
    return { ...result, cells: figure.cells };
  } finally {
    model.recipe.dispose();
  }
}
