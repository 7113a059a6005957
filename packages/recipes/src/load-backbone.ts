import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { IOError, invalidArgument } from "@sit/core";
import {
  type LoadedBackbone,
  type LoadedRecipe,
  type WeightsChoice,
  recipeFromCheckpoint,
} from "@sit/recipes";
import type { LoadedCheckpoint } from "@sit/train";
import { loadCheckpointFile, resumeFrom } from "@sit/train/node";

// Node only (@sit/recipes/node): recipes and backbones from checkpoint files and run folders.
// Rebuilding the recipe is the main entry's recipeFromCheckpoint, which a page uses on bytes.

/** Options of {@link loadRecipe} and {@link loadBackbone}. */
export interface LoadRecipeOptions {
  /** Where warnings go (a skipped unreadable checkpoint of a folder). Default `console.warn`. */
  onWarning?: (message: string) => void;
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
 * Rebuild the recipe that wrote a checkpoint (any built-in recipe, from the config it recorded)
 * and load its weights, student and teacher.
 */
export async function loadRecipe(
  path: string,
  options: LoadRecipeOptions = {},
): Promise<LoadedRecipe> {
  return recipeFromCheckpoint(await openCheckpoint(path, options));
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
