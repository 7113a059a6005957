import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng } from "@sit/core";
import { describe, expect, it } from "vitest";
import type { Sample } from "../types";
import { DATASET_STATS } from "./normalize";
import type { BatchTransform } from "./pipeline";
import {
  type RunNormalize,
  describeRun,
  runEvalTransform,
  runNormalizeStats,
  runTwoViewTransform,
} from "./run";
import { evalTransform, sitTwoViewTransform } from "./sit";

/** Four 12×10 grey images with a horizontal ramp (left ≠ right, so flips and crops show). */
function samples(): Sample[] {
  return Array.from({ length: 4 }, (_, i) => {
    const image = new Uint8Array(12 * 10);
    for (let y = 0; y < 12; y++) for (let x = 0; x < 10; x++) image[y * 10 + x] = 20 * x + 5 * i;
    return { image, height: 12, width: 10, channels: 1 };
  });
}

async function outputs(t: BatchTransform, seed: number): Promise<number[][]> {
  const views = t.apply(samples(), Rng.seed(seed));
  const out = await Promise.all(views.map(async (v) => [...(await v.data())]));
  tf.dispose(views);
  return out;
}

const stats = DATASET_STATS["fashion-mnist"];

describe("a run's transforms from its recorded data settings", () => {
  it("two views: the recorded overrides reach SiT's transform, unset ones keep its defaults", async () => {
    const recorded = runTwoViewTransform(
      {
        channels: 1,
        cropScale: [0.35, 1],
        interpolation: "bilinear",
        augment: { blurSigma: [0.1, 0.5], flipP: 0.9, colorJitter: { p: 0 } },
      },
      8,
      stats,
    );
    // Written out by hand: what `sit pretrain` meant by these settings.
    const direct = sitTwoViewTransform({
      size: 8,
      scale: [0.35, 1],
      interpolation: "bilinear",
      blurSigma: [0.1, 0.5],
      flipP: 0.9,
      colorJitter: { p: 0 },
      normalize: stats,
      channels: 1,
    });
    expect(await outputs(recorded, 3)).toEqual(await outputs(direct, 3));
    // Nothing recorded: SiT's own defaults (bicubic, scale [0.2, 1], its augmentations).
    const bare = runTwoViewTransform({ channels: 1 }, 8, null);
    const defaults = sitTwoViewTransform({ size: 8, normalize: null, channels: 1 });
    expect(await outputs(bare, 4)).toEqual(await outputs(defaults, 4));
    // And the settings do change the views (the comparison above can fail).
    expect(await outputs(recorded, 3)).not.toEqual(await outputs(bare, 3));
  });

  it("evaluation: a plain resize for low-resolution images, resize + centre crop otherwise", async () => {
    const low = runEvalTransform({ channels: 1 }, 8, stats, true);
    const full = runEvalTransform({ channels: 1 }, 8, stats, false);
    const lowDirect = evalTransform({
      size: 8,
      resize: 8,
      interpolation: "bilinear",
      normalize: stats,
      channels: 1,
    });
    const fullDirect = evalTransform({
      size: 8,
      interpolation: "bilinear",
      normalize: stats,
      channels: 1,
    });
    expect(await outputs(low, 0)).toEqual(await outputs(lowDirect, 0));
    expect(await outputs(full, 0)).toEqual(await outputs(fullDirect, 0));
    expect(await outputs(low, 0)).not.toEqual(await outputs(full, 0));
  });
});

describe("a run's description and normalisation", () => {
  it("normalize: none, ImageNet's statistics, or the dataset's own; anything else is refused", () => {
    expect(runNormalizeStats("none", stats)).toBeNull();
    expect(runNormalizeStats("imagenet", stats)).toEqual({
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
    });
    expect(runNormalizeStats("dataset", stats)).toEqual({ mean: [0.286], std: [0.353] });
    const wrong = () => runNormalizeStats("fashion" as RunNormalize, stats);
    expect(wrong).toThrow(ConfigError);
    expect(wrong).toThrow(
      /data\.normalize: expected "imagenet", "dataset" or "none", got "fashion"/,
    );
  });

  it("describeRun records the recipe, its config as given, the data settings and the statistics", () => {
    const data = { channels: 1 as const, normalize: "dataset" as const, dataset: "fashion-mnist" };
    const recipeConfig = { backbone: { depth: 2 } };
    expect(describeRun({ recipe: "sit", config: recipeConfig, data }, stats)).toEqual({
      recipe: "sit",
      recipeConfig,
      data,
      stats: { mean: [0.286], std: [0.353] },
    });
    const none = describeRun(
      { recipe: "sit", config: {}, data: { ...data, normalize: "none" as const } },
      stats,
    );
    expect(none.stats).toBeNull();
  });
});
