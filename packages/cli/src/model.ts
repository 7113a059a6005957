import { existsSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import {
  IMAGENET_STATS,
  type RunDescription,
  describeRun,
  multiCropTransform,
  runEvalTransform,
  runTwoViewTransform,
} from "@sit/data";
import { IOError } from "@sit/core";
import { DinoRecipe, type LoadedRecipe, dinoLocalSize } from "@sit/recipes";
import { loadRecipe } from "@sit/recipes/node";
import type { VisionTransformer } from "@sit/vit";
import { type DatasetKind, resolveDataset } from "./datasets";
import { UsageError } from "./io";
import { type TrainedRecipe, createRecipe, networkOf } from "./recipes";
import type { DataConfig, PretrainConfig } from "./run-config";
import { dataSchema, deepMerge, parseWith } from "./run-config";

/**
 * What a pretraining run records in its checkpoints (`meta.cli`) and in `<out>/run.json`: the
 * recipe, its input config, and how images were prepared, so that every later command (and a web
 * page continuing the run) prepares them the same way (@sit/data's `RunDescription`).
 */
export type RunInfo = RunDescription<DataConfig>;

/** A network ready for inference: the recipe holding it, how its inputs are made, where it came from. */
export interface LoadedModel {
  recipe: TrainedRecipe;
  run: RunInfo;
  /** The checkpoint file, or "random-init". */
  source: string;
  /** Training steps behind these weights (0 for a random initialisation). */
  step: number;
  /** The run folder the checkpoint belongs to (parent of `checkpoints/`), when it has that layout. */
  runDir?: string;
}

/** A pretraining config's run description (@sit/data's `describeRun`, the dataset's statistics). */
export function runInfoOf(config: PretrainConfig, kind: DatasetKind): RunInfo {
  return describeRun(config, kind.stats);
}

/** Side length of the network input. */
export function inputSize(backbone: VisionTransformer): number {
  return backbone.imgSize[0];
}

/** SiT's two-view pretraining transform for a run. */
export function pretrainTransform(run: RunInfo, size: number) {
  return runTwoViewTransform(run.data, size, run.stats);
}

/**
 * The views a recipe trains on: DINO's multi-crop views (2 global crops at `size` and the
 * recipe's local crops; the run's augmentation overrides apply to both) or SiT's two views.
 */
export function recipeTransform(recipe: TrainedRecipe, run: RunInfo, size: number) {
  if (!(recipe instanceof DinoRecipe)) return pretrainTransform(run, size);
  const a = run.data.augment ?? {};
  const mc = recipe.config.multiCrop;
  const b = networkOf(recipe).backbone;
  return multiCropTransform({
    globalSize: size,
    localSize: dinoLocalSize(recipe.config, size, b.patchSize),
    nLocal: mc.nLocal,
    globalScale: mc.globalScale,
    localScale: mc.localScale,
    ...(a.flipP !== undefined ? { flipP: a.flipP } : {}),
    ...(a.grayscaleP !== undefined ? { grayscaleP: a.grayscaleP } : {}),
    ...(a.blurSigma ? { blurSigma: a.blurSigma } : {}),
    ...(a.colorJitter ? { colorJitter: a.colorJitter } : {}),
    interpolation: run.data.interpolation,
    normalize: run.stats,
    channels: run.data.channels,
  });
}

/**
 * The evaluation transform of a run: resize (+ centre crop with the usual 0.875 margin for
 * full-size photos; a plain resize for small stored-at-size datasets such as Fashion-MNIST or
 * CIFAR) and the run's normalisation.
 */
export function evaluationTransform(
  run: RunInfo,
  kind: DatasetKind,
  size: number,
  normalize = true,
) {
  return runEvalTransform(run.data, size, normalize ? run.stats : null, kind.lowRes);
}

/**
 * Load a trained network from a checkpoint file or run folder written by `sit pretrain` (or any
 * @sit/train run of a built-in recipe): @sit/recipes' `loadRecipe`, plus the CLI's record of how
 * the run prepared its images (`meta.cli`).
 */
export async function loadModel(
  path: string,
  dataOverride?: Partial<DataConfig>,
): Promise<LoadedModel> {
  if (!existsSync(resolve(path))) throw new UsageError(`--checkpoint: not found: ${path}`);
  let loaded: LoadedRecipe;
  try {
    loaded = await loadRecipe(path);
  } catch (err) {
    // The library names its argument `path`; here it is the flag.
    if (err instanceof IOError && err.message.startsWith("path: "))
      throw new IOError(`--checkpoint: ${err.message.slice(6)}`, { cause: err });
    throw err;
  }
  const { recipe, meta, source, step } = loaded;
  try {
    const cli = meta.cli as RunInfo | undefined;
    const data = parseWith(
      dataSchema,
      deepMerge((cli?.data ?? {}) as Record<string, unknown>, dataOverride ?? {}),
      "data",
    );
    const run: RunInfo = cli
      ? { ...cli, data }
      : {
          recipe: recipe.name,
          recipeConfig: meta.config as Record<string, unknown>,
          data,
          stats: IMAGENET_STATS,
        };
    const dir = dirname(source);
    return {
      recipe,
      run,
      source,
      step,
      ...(basename(dir) === "checkpoints" ? { runDir: dirname(dir) } : {}),
    };
  } catch (err) {
    recipe.dispose();
    throw err;
  }
}

/** A randomly initialised network of a pretraining config's architecture (its seed: the weights a run starts from). */
export function randomModel(config: PretrainConfig): LoadedModel {
  const kind = resolveDataset(config.data);
  const recipeConfig = withStepsPerEpoch(config.config, 1);
  const recipe = createRecipe(config.recipe, withChannels(recipeConfig, config.data.channels));
  return { recipe, run: runInfoOf(config, kind), source: "random-init", step: 0 };
}

/** The recipe config with `optim.stepsPerEpoch` set. */
export function withStepsPerEpoch(
  config: Record<string, unknown>,
  steps: number,
): Record<string, unknown> {
  const optim = { ...((config.optim as object) ?? {}), stepsPerEpoch: steps };
  return { ...config, optim };
}

/** The recipe config with `backbone.inChans` set to the input channels (a conflicting value is a usage error). */
export function withChannels(
  config: Record<string, unknown>,
  channels: 1 | 3,
): Record<string, unknown> {
  const backbone = (config.backbone ?? {}) as Record<string, unknown>;
  if (backbone.inChans !== undefined && backbone.inChans !== channels)
    throw new UsageError(
      `config.backbone.inChans: expected the input channels data.channels = ${channels}, got ${JSON.stringify(backbone.inChans)}`,
    );
  return { ...config, backbone: { ...backbone, inChans: channels } };
}

/** The backbone of a loaded model (student unless told). */
export function backboneOf(model: LoadedModel, weights: "student" | "teacher" = "student") {
  return networkOf(model.recipe, weights).backbone;
}
