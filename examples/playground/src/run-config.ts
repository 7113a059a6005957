import {
  DATASET_STATS,
  IMAGENET_STATS,
  type RunDescription,
  type RunImageSettings,
  describeRun,
} from "@sit/data";
// The quick start's `sit pretrain` config: the page trains the same recipe, data and schedule,
// and only swaps the model size, the batch and the GMML settings the visitor picks.
import quickstart from "../../quickstart/config.json";
import type { PretrainConfigJson, TrainingData } from "./protocol";

/** A model size the page offers. `backbone` and `projection` override the quick start's. */
export interface ModelPreset {
  label: string;
  backbone: { embedDim: number; depth: number; numHeads: number };
  projection?: { hidden: number; outDim: number };
  batchSize: number;
  /** Schedule overrides of the quick start's optimiser settings. */
  optim?: { warmupEpochs?: number; baseLr?: number };
}

const base = quickstart.config;

/** Patch side of every preset (the quick start's): the GMML panel's token alignment. */
export const PATCH_SIZE: number = base.backbone.patchSize;

/**
 * The sizes offered. All keep the quick start's 28 px input and 7 px patches (a 4 × 4 grid);
 * "quickstart" is exactly `npm run quickstart`'s network; "test" is what the browser test trains.
 */
export const MODEL_PRESETS = {
  test: {
    label: "Test: D 32, depth 1, 2 heads, batch 16 (seconds; what the browser test trains)",
    backbone: { embedDim: 32, depth: 1, numHeads: 2 },
    projection: { hidden: 64, outDim: 32 },
    batchSize: 16,
    // No warm-up and 10× the quick start's base lr: 30 steps then visibly lower the loss (measured:
    // mean of the first 5 steps 6.58, of steps 26–30 5.18; reconstruction 0.85 → 0.60).
    optim: { warmupEpochs: 0, baseLr: 0.05 },
  },
  small: {
    label: "Small: D 48, depth 2, 3 heads, batch 32",
    backbone: { embedDim: 48, depth: 2, numHeads: 3 },
    projection: { hidden: 256, outDim: 64 },
    batchSize: 32,
  },
  quickstart: {
    label: `Quick start: D ${base.backbone.embedDim}, depth ${base.backbone.depth}, ${base.backbone.numHeads} heads, batch ${base.optim.batchSize} (as npm run quickstart)`,
    backbone: {
      embedDim: base.backbone.embedDim,
      depth: base.backbone.depth,
      numHeads: base.backbone.numHeads,
    },
    batchSize: base.optim.batchSize,
  },
  wide: {
    label: "Wide: D 192, depth 6, 3 heads, batch 64 (for a GPU)",
    backbone: { embedDim: 192, depth: 6, numHeads: 3 },
    batchSize: 64,
  },
} satisfies Record<string, ModelPreset>;

export type PresetName = keyof typeof MODEL_PRESETS;

/** GMML settings the page exposes (the recipe's `gmml` section). */
export interface GmmlSettings {
  ratio: number;
  align: number;
  fill: "zeros" | "noise" | "shuffle";
  replaceProb: number;
  replaceRatio: number;
}

/**
 * The `sit pretrain --config` file of a page run: the quick start's, with the preset's network and
 * batch, the visitor's GMML settings, and the data the run uses. For the bundled images it is a
 * config the CLI runs as is (`sit pretrain --config config.json --resume checkpoint.safetensors`).
 */
export function pageConfig(
  preset: PresetName,
  gmml: GmmlSettings,
  source: TrainingData["source"],
): PretrainConfigJson {
  const p: ModelPreset = MODEL_PRESETS[preset];
  const data =
    source === "fashion-mnist-bundled"
      ? { ...quickstart.data }
      : // The visitor's images: RGB, normalised with ImageNet's statistics (SiT's default).
        {
          ...quickstart.data,
          dataset: "image-folder",
          channels: 3 as const,
          normalize: "imagenet",
        };
  return {
    recipe: "sit",
    backend: "auto",
    out: "runs/playground",
    data: data as PretrainConfigJson["data"],
    config: {
      ...base,
      backbone: { ...base.backbone, ...p.backbone },
      ...(p.projection ? { projection: p.projection } : {}),
      optim: { ...base.optim, ...p.optim, batchSize: p.batchSize },
      gmml: { ...gmml },
    },
    train: { keepLast: 2 },
  };
}

/** `meta.cli` of a page run: how `sit pretrain` describes a run (the CLI's RunInfo). */
export type PageRunDescription = RunDescription<PretrainConfigJson["data"] & RunImageSettings>;

/**
 * How a page config's run prepares its images (@sit/data's `describeRun`, as `sit pretrain` does):
 * the page's datasets are the bundled Fashion-MNIST, with its own statistics, and dropped images,
 * which the CLI reads as an image folder (ImageNet's).
 */
export function describePageRun(config: PretrainConfigJson): PageRunDescription {
  const datasetStats =
    config.data.dataset === "fashion-mnist-bundled"
      ? DATASET_STATS["fashion-mnist"]
      : IMAGENET_STATS;
  return describeRun(
    config as PretrainConfigJson & { data: PageRunDescription["data"] },
    datasetStats,
  );
}
