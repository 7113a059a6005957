// Public API of @sit/recipes/node: recipes and backbones from checkpoint files and run folders.
// Everything else is @sit/recipes', which runs in a web page as well (recipeFromCheckpoint
// rebuilds a recipe from checkpoint bytes there).
export {
  loadBackbone,
  loadRecipe,
  openCheckpoint,
  type LoadRecipeOptions,
} from "./load-backbone";
