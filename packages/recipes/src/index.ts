export {
  backboneSchema,
  gmmlSchema,
  optimSchema,
  sitSchema,
  parseConfig,
  resolveBackbone,
  type BackboneConfig,
  type BackboneConfigInput,
  type GmmlConfig,
  type OptimConfig,
  type SitConfig,
  type SitConfigInput,
  gmmlOnlySchema,
  mocoV3Schema,
  maeSchema,
  type GmmlOnlyConfig,
  type GmmlOnlyConfigInput,
  type MocoV3Config,
  type MocoV3ConfigInput,
  type MaeConfig,
  type MaeConfigInput,
} from "./config";
export { twoViews, type TwoViewBatch, type ImageBatch } from "./batches";
export { gradientsByName } from "./gradients";
export { optimSchedules, type OptimSchedules } from "./schedules";
export { SitNetwork, buildSitNetwork, buildBackbone, type SitNetworkOutput } from "./sit-network";
export {
  sitProjectionHead,
  sitProjectionBlocks,
  SIT_PROJECTION_DEFAULTS,
} from "./sit-projection-head";
export {
  SitRecipe,
  createSiT,
  type SitStepInputs,
  type ViewPair,
  type SitStepDetails,
} from "./sit";
export { ModuleRecipe, type StepHyper, type WeightsChoice } from "./recipe-base";
export { CapturedSteps, type DrawnStep, type StepCaptureStatus } from "./captured-steps";
export {
  RECIPES,
  RECIPE_NAMES,
  isRecipeName,
  type RecipeName,
  type RecipeEntry,
  type AnyRecipe,
} from "./registry";
export {
  recipeFromCheckpoint,
  type LoadedBackbone,
  type LoadedRecipe,
} from "./recipe-from-checkpoint";
export { GmmlOnlyRecipe, createGmmlOnly } from "./gmml-only";
export { MocoV3Recipe, MocoStudent, createMoCoV3 } from "./moco-v3";
export { MaeRecipe, MaeNetwork, createMAE } from "./mae";
export {
  DinoRecipe,
  DinoNetwork,
  createDINO,
  dinoSchema,
  dinoLocalSize,
  multiCropViews,
  type DinoConfig,
  type DinoConfigInput,
} from "./dino";
export { DinoHead, DinoLastLayer, DINO_HEAD_DEFAULTS, type DinoHeadOptions } from "./dino-head";
export {
  planWasmHeap,
  measureStepBytes,
  stepBytesAt,
  heapEstimate,
  WASM_HEAP_LIMIT_BYTES,
  HEAP_OVERHEAD_FACTOR,
  type WasmHeapPlan,
  type ProbeRecipe,
  type StepBytes,
} from "./heap-plan";
export {
  sitTorchState,
  sitRecipeFromTorch,
  toOfficialKey,
  fromOfficialKey,
  SIT_TORCH_FORMAT,
  SIT_TORCH_VERSION,
  TORCH_GROUP_NAMES,
  type SitTorchJson,
  type TorchParamGroup,
} from "./sit-torch";
export {
  sitArgsFromConfig,
  sitConfigFromArgs,
  sitTorchArchitecture,
  type SitTorchArchitecture,
} from "./sit-torch-args";
