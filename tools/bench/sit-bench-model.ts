// The SiT step the benchmarks time and count (sit_step.ts, step-dispatches.ts): the two bench
// models and the recipe configuration around them, kept in one place. (tools/bench/sit_step_torch.py
// builds the same step in PyTorch.)
import * as tf from "@tensorflow/tfjs";
import type { Precision } from "../../packages/kernels/src/index";
import { createSiT } from "../../packages/recipes/src/index";

export const SIT_BENCH_MODELS = {
  tiny: { img: 32, patch: 4, dim: 192, depth: 12, heads: 3, name: "ViT-Tiny/4 at 32 px" },
  small: { img: 224, patch: 16, dim: 384, depth: 12, heads: 6, name: "ViT-S/16 at 224 px" },
} as const;
export type SitBenchModel = (typeof SIT_BENCH_MODELS)[keyof typeof SIT_BENCH_MODELS];

/** `name` as a bench model, or an error naming the accepted ones. */
export function sitBenchModel(name: string): SitBenchModel {
  if (!(name in SIT_BENCH_MODELS))
    throw new Error(`--model: expected tiny or small, got ${JSON.stringify(name)}`);
  return SIT_BENCH_MODELS[name as keyof typeof SIT_BENCH_MODELS];
}

/**
 * The benchmarked SiT recipe: `model` with projection 4096 → 256, the reconstruction head and
 * λ = 5, AdamW scheduled for `batch`.
 */
export function createBenchSiT(
  model: SitBenchModel,
  batch: number,
  { depth = model.depth as number, checkpointBlocks = false, precision = "f32" as Precision } = {},
) {
  return createSiT({
    backbone: {
      imgSize: model.img,
      patchSize: model.patch,
      embedDim: model.dim,
      depth,
      numHeads: model.heads,
      inChans: 3,
      checkpointBlocks,
    },
    projection: { hidden: 4096, outDim: 256 },
    optim: { batchSize: batch, epochs: 100, stepsPerEpoch: 100 },
    lambda: 5,
    ...(precision !== "f32" ? { precision } : {}),
  });
}

/** Two seeded N(0, 1) views `[batch, img, img, 3]` (the same every run). */
export function benchViews(model: SitBenchModel, batch: number): tf.Tensor4D[] {
  return [0, 1].map(
    (i) =>
      tf.randomNormal([batch, model.img, model.img, 3], 0, 1, "float32", 11 + i) as tf.Tensor4D,
  );
}

/**
 * Call `hook` whenever one of `recipe`'s launched steps starts the read of its values: the submit
 * that starts it is the step's last (the end of a step's host time in the benches).
 */
export function onLastSubmit(recipe: ReturnType<typeof createBenchSiT>, hook: () => void): void {
  const launch = recipe.launchStep.bind(recipe);
  recipe.launchStep = async (b, k) => {
    const l = await launch(b, k);
    const data = l.values.data.bind(l.values);
    l.values.data = (() => {
      const p = data();
      hook();
      return p;
    }) as typeof l.values.data;
    return l;
  };
}
