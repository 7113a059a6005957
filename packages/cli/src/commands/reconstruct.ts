import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { Rng } from "@sit/core";
import type { NormalizeStats } from "@sit/data";
import { inEvalMode, toRgbImages } from "@sit/eval";
import { type GmmlMasker, maskingResultToTensors } from "@sit/gmml";
import type { SitNetwork } from "@sit/recipes";
import * as tf from "@tensorflow/tfjs";
import { startBackend } from "../backend";
import { type CliIO, note } from "../io";
import { inputSize, loadModel } from "../model";
import { type Figure, type Rect, gridFigure, writeSvgAsPng } from "../figure";
import { reconstructionParts } from "../recipes";
import { type PictureOptions, pictureBatch } from "./inspect-common";

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
  /** Where each picture is in the PNG: `cells[image][column]` (original, corrupted, reconstruction, filled in). */
  cells: Rect[][];
}

/** A reconstruction picture and what it measured. */
export interface ReconstructionFigure {
  figure: Figure;
  /** Fraction of pixels corrupted, over the shown images. */
  maskedFraction: number;
  /** Mean |x̂ − x| over the corrupted pixels (normalised units). */
  maskedL1: number;
}

/**
 * The reconstruction picture of `images` (NHWC, normalised; not disposed): one row per image —
 * original | GMML-corrupted | reconstruction | filled in (the reconstruction in the corrupted
 * pixels, the original elsewhere) — un-normalised with `stats` for viewing. The
 * corruption is drawn with `masker` from `seed` (its own generator: training's are untouched)
 * and the network runs in eval mode; every tensor made here is disposed.
 */
export function reconstructionFigure(
  network: SitNetwork,
  masker: GmmlMasker,
  images: tf.Tensor4D,
  stats: NormalizeStats | null,
  o: { seed: number; title: string; rowLabels?: string[] },
): ReconstructionFigure {
  const shape = images.shape as [number, number, number, number];
  const masked = masker.apply(images, Rng.seed(o.seed));
  const t = maskingResultToTensors(masked);
  let recon: Float32Array;
  let corrupted: Float32Array;
  try {
    const rec = inEvalMode(network, () =>
      tf.tidy(() => network.forward(t.corrupted).reconstruction as tf.Tensor4D),
    );
    recon = rec.dataSync() as Float32Array;
    rec.dispose();
    corrupted = t.corrupted.dataSync() as Float32Array;
  } finally {
    tf.dispose([t.corrupted, t.pixelMask, ...(t.tokenMask ? [t.tokenMask] : [])]);
  }
  const clean = images.dataSync() as Float32Array;
  const [B, H, W, C] = shape;
  let sum = 0;
  let count = 0;
  for (let p = 0; p < B * H * W; p++)
    if (masked.pixelMask.data[p])
      for (let c = 0; c < C; c++) {
        sum += Math.abs(recon[p * C + c] - clean[p * C + c]);
        count++;
      }
  // The reconstruction loss sees only the corrupted pixels, so the network's output elsewhere is
  // untrained: the fourth picture shows what the loss trains, the reconstruction in the corrupted
  // pixels and the original in the others (MAE's "reconstruction + visible" view).
  const filled = Float32Array.from(clean);
  for (let p = 0; p < B * H * W; p++)
    if (masked.pixelMask.data[p]) for (let c = 0; c < C; c++) filled[p * C + c] = recon[p * C + c];
  const cols = [clean, corrupted, recon, filled].map((d) => toRgbImages(d, shape, stats));
  const rows = cols[0].map((_, i) => cols.map((c) => c[i]));
  const maskedFraction = count / C / (B * H * W);
  const maskedL1 = count > 0 ? sum / count : 0;
  const figure = gridFigure(rows, {
    title: o.title,
    subtitle: `${(100 * maskedFraction).toFixed(1)} % of pixels corrupted (seed ${o.seed}); mean |x̂ − x| on them ${maskedL1.toFixed(3)} (normalised units)`,
    columnTitles: ["original", "corrupted", "reconstruction", "filled in"],
    ...(o.rowLabels ? { rowLabels: o.rowLabels } : {}),
  });
  return { figure, maskedFraction, maskedL1 };
}

/**
 * `sit reconstruct`: a PNG with one row per image — original | GMML-corrupted | reconstruction |
 * filled in —
 * un-normalised for viewing, titled. The corruption is drawn with the run's GMML settings
 * (including the paste from another image of the shown batch) from `seed`; the network runs in
 * eval mode.
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
    let picture: ReconstructionFigure;
    try {
      picture = reconstructionFigure(network, masker, images, model.run.stats, {
        seed: options.seed,
        title: `GMML reconstruction (${options.weights}, ${model.step} training steps)`,
        ...(classNames ? { rowLabels: labels.map((l) => classNames[l] ?? "") } : {}),
      });
    } finally {
      images.dispose();
    }
    const path = resolve(options.out);
    mkdirSync(dirname(path), { recursive: true });
    await writeSvgAsPng(path, picture.figure.svg);
    const { maskedFraction, maskedL1 } = picture;
    note(
      io,
      `[sit] reconstruction of ${labels.length} ${options.split} images (weights after ${model.step} steps, ${(100 * maskedFraction).toFixed(1)} % of pixels corrupted, masked L1 ${maskedL1.toFixed(4)})`,
    );
    return {
      path,
      images: labels.length,
      maskedFraction,
      maskedL1,
      step: model.step,
      cells: picture.figure.cells,
    };
  } finally {
    model.recipe.dispose();
  }
}
