import { IOError } from "@sit/core";
import type { LoadedCheckpoint } from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import { type AnyRecipe, RECIPES, RECIPE_NAMES, type RecipeEntry, isRecipeName } from "./registry";

// A recipe rebuilt from a @sit/train checkpoint, wherever the checkpoint came from: a file under
// Node (`loadRecipe` of @sit/recipes/node), or bytes a page uploaded (`parseTrainCheckpoint`).

/** A recipe rebuilt from a checkpoint, with its weights loaded. */
export interface LoadedRecipe {
  /** The recipe (student, teacher, heads and optimiser state as saved); dispose it when done. */
  recipe: AnyRecipe;
  /** The checkpoint file that was read. */
  source: string;
  /** Training steps behind these weights. */
  step: number;
  /** Everything the checkpoint's writer recorded beside the tensors (`meta.config`, …). */
  meta: Record<string, unknown>;
}

/** A ViT backbone from a checkpoint, and the recipe that holds it. */
export interface LoadedBackbone extends LoadedRecipe {
  backbone: VisionTransformer;
  /** Free every tensor of the recipe, the backbone's included. */
  dispose(): void;
}

/**
 * Rebuild the recipe that wrote a checkpoint (any built-in recipe of {@link RECIPES}, from the
 * config it recorded) and load its weights, student and teacher. Disposes the checkpoint's tensors
 * (the recipe holds copies). In a page: `recipeFromCheckpoint(parseTrainCheckpoint(bytes, name))`.
 */
export async function recipeFromCheckpoint(ckpt: LoadedCheckpoint): Promise<LoadedRecipe> {
  try {
    const meta = ckpt.state.meta;
    if (!isRecipeName(ckpt.recipe))
      throw new IOError(
        `${ckpt.path}: written by recipe ${JSON.stringify(ckpt.recipe)}; expected one of ${RECIPE_NAMES.join(", ")}`,
      );
    if (meta.config === undefined || meta.config === null)
      throw new IOError(`${ckpt.path}: its meta holds no recipe config (meta.config)`);
    const entry: RecipeEntry = RECIPES[ckpt.recipe];
    const recipe = entry.create(meta.config);
    try {
      await recipe.loadState(ckpt.state);
    } catch (err) {
      recipe.dispose();
      throw err;
    }
    return { recipe, source: ckpt.path, step: ckpt.progress.step, meta };
  } finally {
    ckpt.dispose();
  }
}
