import { RECIPES, parseConfig, resolveBackbone } from "@sit/recipes";
import { ConfigError } from "@sit/core";
import { limitDataset, resolveDataset } from "./datasets";
import { type CliIO, UsageError } from "./io";
import { withChannels, withStepsPerEpoch } from "./model";
import type { RecipeName } from "./recipes";
import type { PretrainConfig } from "./run-config";

/**
 * What a run's config implies but does not state: its size in steps and the values its schedules
 * take. Written into `run.json` and `--print-config` under `derived`; ignored when read back.
 */
export interface DerivedRunValues {
  /** Pretraining images (after `data.limit`); null when the dataset could not be opened. */
  images: number | null;
  /** floor(images / batch size): the last partial batch of an epoch is dropped. */
  stepsPerEpoch: number | null;
  /** epochs × stepsPerEpoch: the length the schedules span. */
  scheduleSteps: number | null;
  /** Where `train.steps` stops the run (default: at the end of the schedules). */
  stopAtStep: number | null;
  /** Learning rate: linear warm-up from 0 to `peak` over `warmupSteps`, then cosine to `final`. */
  lr: { peak: number; final: number; warmupSteps: number | null };
  /** Weight decay: cosine from `start` to `end` over the schedules. */
  weightDecay: { start: number; end: number };
  /** Teacher momentum (recipes with an EMA teacher): cosine from `base` to `final`. */
  momentum?: { base: number; final: number };
}

interface ParsedOptim {
  batchSize: number;
  epochs: number;
  baseLr: number;
  minLr: number;
  warmupEpochs: number;
  weightDecay: number;
  weightDecayEnd: number;
}

/**
 * The recipe config with every default filled in and the ViT preset spelt out (embedDim, depth,
 * numHeads), as the recipe will build it. Still a valid input: `run.json` can be given back to
 * `--config`. Invalid values are usage errors naming the field.
 */
export function resolveRecipeConfig(
  recipe: RecipeName,
  config: Record<string, unknown>,
  channels: 1 | 3,
): Record<string, unknown> {
  // stepsPerEpoch is a derived value the CLI sets when it knows the dataset; 1 only satisfies the schema.
  const input = withChannels(withStepsPerEpoch(config, 1), channels);
  let parsed: Record<string, unknown> & { backbone: Parameters<typeof resolveBackbone>[0] };
  try {
    // The schema the recipe validates its config with (@sit/recipes' registry).
    parsed = parseConfig(RECIPES[recipe].schema, input, "config");
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
  const { stepsPerEpoch: _, ...optimOut } = parsed.optim as Record<string, unknown>;
  return {
    ...parsed,
    backbone: { preset: parsed.backbone.preset ?? "small", ...resolveBackbone(parsed.backbone) },
    optim: optimOut,
  };
}

/** The values a run derives from its resolved recipe config and its number of images. */
export function deriveRunValues(
  resolved: Record<string, unknown>,
  images: number | null,
  stopAtStep?: number,
): DerivedRunValues {
  const o = resolved.optim as ParsedOptim;
  const stepsPerEpoch = images === null ? null : Math.floor(images / o.batchSize);
  const scheduleSteps = stepsPerEpoch === null ? null : o.epochs * stepsPerEpoch;
  const momentum = resolved.momentum as { base: number; final: number } | undefined;
  return {
    images,
    stepsPerEpoch,
    scheduleSteps,
    stopAtStep:
      stopAtStep !== undefined && scheduleSteps !== null
        ? Math.min(stopAtStep, scheduleSteps)
        : (stopAtStep ?? scheduleSteps),
    lr: {
      peak: (o.baseLr * o.batchSize) / 256, // SiT's linear scaling rule
      final: o.minLr,
      // As @sit/recipes' optimSchedules: the warm-up is cut one step short of the end.
      warmupSteps:
        scheduleSteps === null || stepsPerEpoch === null
          ? null
          : Math.min(o.warmupEpochs * stepsPerEpoch, scheduleSteps - 1),
    },
    weightDecay: { start: o.weightDecay, end: o.weightDecayEnd },
    ...(momentum ? { momentum: { base: momentum.base, final: momentum.final } } : {}),
  };
}

/** Warnings about schedules that cannot do what their names promise (printed, not fatal). */
export function scheduleWarnings(
  resolved: Record<string, unknown>,
  derived: DerivedRunValues,
): string[] {
  const o = resolved.optim as ParsedOptim;
  const out: string[] = [];
  if (o.warmupEpochs > 0 && o.warmupEpochs >= o.epochs)
    out.push(
      `config.optim.warmupEpochs (${o.warmupEpochs}) ≥ config.optim.epochs (${o.epochs}): the learning rate only warms up, reaching its peak at the last step, and never decays; lower --warmup-epochs or raise --epochs`,
    );
  else if (
    derived.lr.warmupSteps !== null &&
    derived.stopAtStep !== null &&
    derived.lr.warmupSteps >= derived.stopAtStep &&
    derived.lr.warmupSteps > 0
  )
    out.push(
      `train.steps (${derived.stopAtStep}) ends the run within the learning-rate warm-up (${derived.lr.warmupSteps} steps): it never trains at the peak rate`,
    );
  return out;
}

/** A pretraining config as `run.json` and `--print-config` show it: resolved, plus what it derives. */
export type ResolvedPretrainConfig = PretrainConfig & { derived: DerivedRunValues };

/**
 * The fully resolved pretraining config: the CLI's defaults, the recipe's defaults, the ViT
 * preset spelt out, and under `derived` the schedules' sizes and values. `images` is the number of
 * pretraining images (null: unknown).
 */
export function resolvePretrainRun(
  config: PretrainConfig,
  images: number | null,
): ResolvedPretrainConfig {
  const { derived: _, ...rest } = config as PretrainConfig & { derived?: unknown };
  const recipeConfig = resolveRecipeConfig(
    config.recipe as RecipeName,
    config.config,
    config.data.channels,
  );
  return {
    ...rest,
    config: recipeConfig,
    derived: deriveRunValues(recipeConfig, images, config.train.steps),
  } as ResolvedPretrainConfig;
}

/**
 * `sit pretrain --print-config`: the resolved config, counting the pretraining images when the
 * dataset can be opened (otherwise the step counts are null and a note says why). Warnings go to
 * `io.err`.
 */
export function printableConfig(config: PretrainConfig, io: CliIO): ResolvedPretrainConfig {
  let images: number | null = null;
  try {
    images = limitDataset(resolveDataset(config.data).open("pretrain"), config.data.limit).length;
  } catch (err) {
    io.err(
      `note: step counts are null: the dataset could not be opened (${(err as Error).message})\n`,
    );
  }
  const resolved = resolvePretrainRun(config, images);
  for (const w of scheduleWarnings(resolved.config, resolved.derived)) io.err(`warning: ${w}\n`);
  return resolved;
}
