import { ConfigError, checkNumber } from "@sit/core";
import { IMAGENET_STATS, type NormalizeStats } from "./normalize";
import {
  ColorJitter,
  type ColorJitterOptions,
  Normalize,
  RandomGaussianBlur,
  RandomGrayscale,
  RandomHorizontalFlip,
  RandomSolarize,
  type TensorOp,
} from "./ops";
import {
  BatchTransform,
  RandomResizedCrop,
  type Size,
  type TransformExecution,
  ViewPipeline,
} from "./pipeline";
import type { Interpolation } from "./resample";

/**
 * {@link multiCropTransform}'s defaults: DINO's `DataAugmentationDINO` (Caron et al. 2021,
 * main_dino.py): global crops 224 px at scale 0.4–1, 8 local crops 96 px at scale 0.05–0.4.
 */
export const MULTI_CROP_DEFAULTS = {
  globalSize: 224,
  localSize: 96,
  nLocal: 8,
  globalScale: [0.4, 1] as readonly [number, number],
  localScale: [0.05, 0.4] as readonly [number, number],
} as const;

/** Options of {@link multiCropTransform} ({@link MULTI_CROP_DEFAULTS}). */
export interface MultiCropOptions {
  /** Size of the 2 global crops (default 224). */
  globalSize?: Size;
  /** Size of the local crops (default 96; a multiple of the ViT's patch size). */
  localSize?: Size;
  /** Number of local crops (default 8; 0: the two global crops only). */
  nLocal?: number;
  /** Area ranges of the random resized crops (defaults 0.4–1 and 0.05–0.4). */
  globalScale?: readonly [number, number];
  localScale?: readonly [number, number];
  /** Default "bicubic" (DINO's). */
  interpolation?: Interpolation;
  flipP?: number;
  /** Colour jitter; default brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, p 0.8. */
  colorJitter?: ColorJitterOptions;
  grayscaleP?: number;
  /** Blur σ range (default [0.1, 2.0]). */
  blurSigma?: readonly [number, number];
  /** Normalisation; default ImageNet statistics; null: none. */
  normalize?: NormalizeStats | null;
  channels?: 1 | 3;
  execution?: TransformExecution;
}

/**
 * DINO's multi-crop views: 2 global crops then `nLocal` local crops, each with its own random
 * resized crop and DINO's augmentations — flip 0.5, colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8,
 * grayscale 0.2; global crop 1: Gaussian blur p 1.0; global crop 2: blur p 0.1 and solarize p 0.2;
 * local crops: blur p 0.5 — then normalisation. The batch's `views` are `[B, g, g, C]` × 2 then
 * `[B, l, l, C]` × nLocal (a ViT takes the local size by interpolating its position embeddings).
 */
export function multiCropTransform(options: MultiCropOptions = {}): BatchTransform<"views"> {
  const channels = options.channels ?? 3;
  const nLocal = checkNumber("nLocal", options.nLocal ?? MULTI_CROP_DEFAULTS.nLocal, {
    integer: true,
    min: 0,
  });
  const globalScale = options.globalScale ?? MULTI_CROP_DEFAULTS.globalScale;
  const localScale = options.localScale ?? MULTI_CROP_DEFAULTS.localScale;
  if (nLocal > 0 && localScale[0] > globalScale[1])
    throw new ConfigError(
      `localScale: expected a range below the global crops' (${globalScale.join("–")}), got ${localScale.join("–")}`,
    );
  const interpolation = options.interpolation ?? "bicubic";
  const sigma = options.blurSigma ?? [0.1, 2.0];
  const stats = options.normalize ?? IMAGENET_STATS;
  const norm = (): TensorOp[] =>
    options.normalize === null
      ? []
      : [
          new Normalize(
            channels === 1 && stats.mean.length === 3
              ? { mean: [stats.mean[0]], std: [stats.std[0]] }
              : stats,
          ),
        ];
  const flipAndJitter = (): TensorOp[] => [
    new RandomHorizontalFlip({ p: options.flipP ?? 0.5 }),
    new ColorJitter({
      ...{ brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 },
      ...options.colorJitter,
    }),
    new RandomGrayscale({ p: options.grayscaleP ?? 0.2 }),
  ];
  const globalCrop = new RandomResizedCrop({
    size: options.globalSize ?? MULTI_CROP_DEFAULTS.globalSize,
    scale: globalScale,
    interpolation,
  });
  const views = [
    new ViewPipeline(globalCrop, [
      ...flipAndJitter(),
      new RandomGaussianBlur({ sigma, p: 1.0 }),
      ...norm(),
    ]),
    new ViewPipeline(globalCrop, [
      ...flipAndJitter(),
      new RandomGaussianBlur({ sigma, p: 0.1 }),
      new RandomSolarize({ p: 0.2 }),
      ...norm(),
    ]),
  ];
  if (nLocal > 0) {
    const localCrop = new RandomResizedCrop({
      size: options.localSize ?? MULTI_CROP_DEFAULTS.localSize,
      scale: localScale,
      interpolation,
    });
    for (let i = 0; i < nLocal; i++)
      views.push(
        new ViewPipeline(localCrop, [
          ...flipAndJitter(),
          new RandomGaussianBlur({ sigma, p: 0.5 }),
          ...norm(),
        ]),
      );
  }
  return new BatchTransform("views", views, channels, options.execution);
}
