// How a pretraining run prepares its images, from the settings it records: `sit pretrain` writes
// them into `run.json` and each checkpoint (`meta.cli`), and every later reader — the CLI's other
// commands, a web page continuing the run — builds its transforms here, so that they agree.
import { ConfigError } from "@sit/core";
import { IMAGENET_STATS, type NormalizeStats } from "./normalize";
import type { BatchTransform } from "./pipeline";
import { type SitTwoViewOptions, evalTransform, sitTwoViewTransform } from "./sit";

/** Overrides of SiT's two-view augmentation a run may record (the rest keep their defaults). */
export type RunAugment = Pick<
  SitTwoViewOptions,
  "flipP" | "grayscaleP" | "blurSigma" | "blurP" | "solarizeP" | "colorJitter"
>;

/** A run's data settings that decide how its images are prepared (`sit pretrain`'s `data`). */
export interface RunImageSettings {
  /** Network input channels. */
  channels: 1 | 3;
  /** RandomResizedCrop area range (default SiT's [0.2, 1]). */
  cropScale?: readonly [number, number];
  /** Resampling of the random resized crop (default SiT's bicubic). */
  interpolation?: "bicubic" | "bilinear";
  augment?: RunAugment;
}

/**
 * What a pretraining run records about itself (checkpoints' `meta.cli`, `run.json`): the recipe,
 * its config as given, the data settings and the normalisation applied to the network input.
 */
export interface RunDescription<D extends RunImageSettings = RunImageSettings> {
  recipe: string;
  /** The recipe's config as given (defaults are filled by the recipe). */
  recipeConfig: Record<string, unknown>;
  data: D;
  /** Normalisation applied to the network input (null: none). */
  stats: NormalizeStats | null;
}

/** How a run normalises its network input (`sit pretrain`'s `data.normalize`). */
export type RunNormalize = "imagenet" | "dataset" | "none";

/**
 * The statistics a run normalises its input with: none, ImageNet's (SiT's default, spec §2), or
 * its dataset's own, `datasetStats` (e.g. `DATASET_STATS["fashion-mnist"]`; ImageNet's for a
 * dataset that has none published).
 */
export function runNormalizeStats(
  normalize: RunNormalize,
  datasetStats: NormalizeStats,
): NormalizeStats | null {
  if (normalize === "none") return null;
  if (normalize === "dataset") return datasetStats;
  if (normalize === "imagenet") return IMAGENET_STATS;
  throw new ConfigError(
    `data.normalize: expected "imagenet", "dataset" or "none", got ${JSON.stringify(normalize)}`,
  );
}

/**
 * What a pretraining run records about itself, from its `sit pretrain` config (recipe, recipe
 * config, data settings) and its dataset's own statistics: the CLI and a page training in the
 * browser describe their runs here, so that each reads the other's checkpoints alike.
 */
export function describeRun<D extends RunImageSettings & { normalize: RunNormalize }>(
  config: { recipe: string; config: Record<string, unknown>; data: D },
  datasetStats: NormalizeStats,
): RunDescription<D> {
  return {
    recipe: config.recipe,
    recipeConfig: config.config,
    data: config.data,
    stats: runNormalizeStats(config.data.normalize, datasetStats),
  };
}

/** Only the augmentation overrides that are set (an unset one keeps the transform's default). */
function augmentOverrides(a: RunAugment | undefined): RunAugment {
  const out: RunAugment = {};
  if (!a) return out;
  if (a.flipP !== undefined) out.flipP = a.flipP;
  if (a.grayscaleP !== undefined) out.grayscaleP = a.grayscaleP;
  if (a.blurSigma) out.blurSigma = a.blurSigma;
  if (a.blurP) out.blurP = a.blurP;
  if (a.solarizeP !== undefined) out.solarizeP = a.solarizeP;
  if (a.colorJitter) out.colorJitter = a.colorJitter;
  return out;
}

/** SiT's two views of a run's images at `size` px (what `sit pretrain` trains on). */
export function runTwoViewTransform(
  data: RunImageSettings,
  size: number,
  stats: NormalizeStats | null,
): BatchTransform<"views"> {
  return sitTwoViewTransform({
    size,
    ...augmentOverrides(data.augment),
    ...(data.cropScale ? { scale: data.cropScale } : {}),
    ...(data.interpolation ? { interpolation: data.interpolation } : {}),
    normalize: stats,
    channels: data.channels,
  });
}

/**
 * The evaluation transform of a run's images: a plain resize to `size` for small images stored at
 * about that size (`lowRes`: Fashion-MNIST, CIFAR), else resize + centre crop with the usual 0.875
 * margin; bilinear; the run's normalisation (null: none).
 */
export function runEvalTransform(
  data: Pick<RunImageSettings, "channels">,
  size: number,
  stats: NormalizeStats | null,
  lowRes: boolean,
): BatchTransform<"images"> {
  return evalTransform({
    size,
    ...(lowRes ? { resize: size } : {}),
    interpolation: "bilinear",
    normalize: stats,
    channels: data.channels,
  });
}
