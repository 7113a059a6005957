import { ConfigError } from "@sit/core";
import type { GmmlMasker } from "@sit/gmml";
import {
  type AnyRecipe,
  GmmlOnlyRecipe,
  RECIPES,
  RECIPE_NAMES,
  type RecipeEntry,
  type RecipeName,
  type SitNetwork,
  SitRecipe,
  type TwoViewBatch,
  type WeightsChoice,
  isRecipeName,
  optimSchema,
} from "@sit/recipes";
import type { Recipe, RecipeState } from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import type { Module } from "@sit/core";
import { UsageError } from "./io";

// The recipes the CLI can pretrain are @sit/recipes' registry (RECIPES); this file only turns
// their errors into usage errors that name the flag.

export { RECIPE_NAMES, isRecipeName, type RecipeName, type WeightsChoice };

/** A recipe as the CLI uses it: any built-in recipe. */
export type TrainedRecipe = AnyRecipe;

/** Build a recipe from its config; an invalid config is a usage error that names the field. */
export function createRecipe(name: string, config: Record<string, unknown>): TrainedRecipe {
  if (!isRecipeName(name))
    throw new UsageError(
      `recipe: expected one of ${RECIPE_NAMES.join(", ")}, got ${JSON.stringify(name)}`,
    );
  const entry: RecipeEntry = RECIPES[name];
  try {
    return entry.create(config);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}

/** The optimiser settings with their defaults filled (to read the batch size before building). */
export function optimDefaults(optim: unknown): { batchSize: number; epochs: number } {
  const parsed = optimSchema.safeParse({ ...(optim as object), stepsPerEpoch: 1 });
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UsageError(`config.optim.${i.path.join(".")}: ${i.message}`);
  }
  return { batchSize: parsed.data.batchSize, epochs: parsed.data.epochs };
}

/** `--weights teacher` needs a recipe with a teacher. */
function checkWeights(recipe: TrainedRecipe, weights: WeightsChoice): void {
  if (weights === "teacher" && !recipe.teacherModule)
    throw new UsageError(
      `--weights: recipe "${recipe.name}" has no teacher; use --weights student`,
    );
}

/** The network (student or teacher) of a recipe and its ViT backbone. */
export function networkOf(
  recipe: TrainedRecipe,
  weights: WeightsChoice = "student",
): { network: Module; backbone: VisionTransformer } {
  checkWeights(recipe, weights);
  return { network: recipe.network(weights), backbone: recipe.backbone(weights) };
}

/** The SiT network with a reconstruction head and the GMML masker, for recipes that have both (sit, gmml). */
export function reconstructionParts(
  recipe: TrainedRecipe,
  weights: WeightsChoice = "student",
): { network: SitNetwork; masker: GmmlMasker } {
  if (!(recipe instanceof SitRecipe || recipe instanceof GmmlOnlyRecipe))
    throw new UsageError(
      `recipe "${recipe.name}" has no GMML reconstruction head (reconstruction pictures need the sit or gmml recipe)`,
    );
  checkWeights(recipe, weights);
  return { network: recipe.network(weights), masker: recipe.masker };
}

/**
 * A recipe whose checkpoints also carry the CLI's run description under `meta.cli` (dataset,
 * normalisation, channels…), so that `sit reconstruct`, `sit knn` and the others need nothing
 * but the checkpoint file.
 */
export class RecipeWithRunInfo implements Recipe<TwoViewBatch> {
  readonly name: string;
  constructor(
    readonly inner: TrainedRecipe,
    readonly runInfo: object,
  ) {
    this.name = inner.name;
  }
  get totalSteps(): number | undefined {
    return this.inner.totalSteps;
  }
  trainStep(batch: TwoViewBatch, step: number) {
    return this.inner.trainStep(batch, step);
  }
  async saveState(): Promise<RecipeState> {
    const s = await this.inner.saveState();
    return { tensors: s.tensors, meta: { ...s.meta, cli: this.runInfo } };
  }
  loadState(state: RecipeState): void | Promise<void> {
    return this.inner.loadState(state);
  }
}
