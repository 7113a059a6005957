import type { Module } from "@sit/core";
import type { z } from "zod";
import { gmmlOnlySchema, maeSchema, mocoV3Schema, sitSchema } from "./config";
import { createDINO, dinoSchema } from "./dino";
import { createGmmlOnly } from "./gmml-only";
import { createMAE } from "./mae";
import { createMoCoV3 } from "./moco-v3";
import type { ModuleRecipe } from "./recipe-base";
import { createSiT } from "./sit";
import type { TwoViewBatch } from "./batches";

/** Any built-in recipe, as tools that take a recipe by name (the CLI) see it. */
export type AnyRecipe = ModuleRecipe<Module, TwoViewBatch>;

/** A recipe by name: the schema of its config and its factory. */
export interface RecipeEntry<R extends AnyRecipe = AnyRecipe> {
  /** The zod schema the factory validates with (defaults filled, unknown fields refused). */
  readonly schema: z.ZodTypeAny;
  /**
   * Build the recipe from a config not yet validated (a JSON file, command-line flags): a wrong
   * field throws a ConfigError that names it.
   */
  create(config: unknown): R;
}

/** The built-in recipes by name, each with its config schema and factory. */
export const RECIPES = {
  sit: { schema: sitSchema, create: createSiT },
  gmml: { schema: gmmlOnlySchema, create: createGmmlOnly },
  mocov3: { schema: mocoV3Schema, create: createMoCoV3 },
  mae: { schema: maeSchema, create: createMAE },
  dino: { schema: dinoSchema, create: createDINO },
} as const satisfies Record<string, RecipeEntry>;

export type RecipeName = keyof typeof RECIPES;

/** The names of {@link RECIPES}, in order. */
export const RECIPE_NAMES = Object.keys(RECIPES) as [RecipeName, ...RecipeName[]];

/** Whether `name` names a built-in recipe. */
export function isRecipeName(name: unknown): name is RecipeName {
  return typeof name === "string" && Object.hasOwn(RECIPES, name);
}
