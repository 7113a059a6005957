import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { IOError, invalidArgument } from "@sit/core";
import { type LoadedCheckpoint, loadCheckpointFile, resumeFrom } from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import type { WeightsChoice } from "./recipe-base";
import { type AnyRecipe, RECIPES, RECIPE_NAMES, type RecipeEntry, isRecipeName } from "./registry";

/** Options of {@link loadRecipe} and {@link loadBackbone}. */
export interface LoadRecipeOptions {
  /** Where warnings go (a skipped unreadable checkpoint of a folder). Default `console.warn`. */
  onWarning?: (message: string) => void;
}

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
 * The checkpoint a path names: a checkpoint file; or a folder of checkpoints (`latest`, else the
 * newest readable one); or a run folder whose `checkpoints/` holds them (what `sit pretrain
 * --out` and `fit(…, { checkpoint: { dir } })` write).
 */
export async function openCheckpoint(
  path: string,
  options: LoadRecipeOptions = {},
): Promise<LoadedCheckpoint> {
  if (typeof path !== "string" || path.length === 0)
    throw invalidArgument("path", path, "a checkpoint file or a run folder");
  const target = resolve(path);
  if (!existsSync(target))
    throw new IOError(`path: expected a checkpoint file or a run folder, got ${path} (not found)`);
  if (statSync(target).isFile()) return loadCheckpointFile(target);
  const dirs = [target, join(target, "checkpoints")];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    const found = await resumeFrom(dir, options.onWarning ? { onWarning: options.onWarning } : {});
    if (found) return found;
  }
  throw new IOError(`path: ${path} holds no checkpoint (looked in ${dirs.join(" and ")})`);
}

/**
 * Rebuild the recipe that wrote a checkpoint (any built-in recipe of {@link RECIPES}, from the
 * config it recorded) and load its weights, student and teacher.
 */
export async function loadRecipe(
  path: string,
  options: LoadRecipeOptions = {},
): Promise<LoadedRecipe> {
  const ckpt = await openCheckpoint(path, options);
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

/**
 * A pretrained ViT backbone from a checkpoint of any built-in recipe — the network that feature
 * extraction, k-NN, linear probes and fine-tuning take:
 *
 * ```ts
 * const { backbone, dispose } = await loadBackbone("runs/sit"); // run folder, checkpoints/ or file
 * const features = backbone.forward(images).cls;
 * dispose();
 * ```
 *
 * `weights: "teacher"` gives the EMA teacher's backbone (recipes with a teacher: sit, mocov3).
 */
export async function loadBackbone(
  path: string,
  options: LoadRecipeOptions & { weights?: WeightsChoice } = {},
): Promise<LoadedBackbone> {
  const loaded = await loadRecipe(path, options);
  try {
    const backbone = loaded.recipe.backbone(options.weights ?? "student");
    return { ...loaded, backbone, dispose: () => loaded.recipe.dispose() };
  } catch (err) {
    loaded.recipe.dispose();
    throw err;
  }
}
