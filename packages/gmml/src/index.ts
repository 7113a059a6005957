export {
  readImageBatch,
  type ImageBatch,
  type MaskingBuffers,
  type ImageInput,
  type PixelMask,
} from "./images";
export {
  drawGmmlBlocks,
  gmmlGeometry,
  type GmmlBlock,
  type GmmlBlockDraw,
  type GmmlBlockOptions,
  type GmmlGeometry,
} from "./blocks";
export { GMML_FILLS, type GmmlFill } from "./fills";
export {
  GmmlMasker,
  GMML_DEFAULTS,
  type GmmlMaskerOptions,
  type GmmlImageRecord,
  type GmmlMaskingResult,
  type GmmlCorruptionPlan,
} from "./gmml-masker";
export { applyCorruptionPlan, PLAN_ZERO, type CorruptionPlan } from "./corruption-plan";
export {
  corruptViews,
  corruptViewsStacked,
  applyPixelSources,
  planStackedViews,
  type StackedViewsPlan,
} from "./corrupt-views";
export {
  replaceFromBatch,
  type BatchReplacementOptions,
  type BatchReplacementResult,
} from "./replacement";
export {
  maskingResultToTensors,
  type MaskingResult,
  type MaskingStrategy,
  type MaskingTensors,
} from "./strategy";
export {
  pixelToTokenMask,
  tokenToPixelMask,
  type TokenMask,
  type PixelToTokenOptions,
} from "./token-mask";
export type { TokenFill } from "./token-corruption";
export {
  RandomTokenMasker,
  randomTokenMask,
  randomTokenCount,
  type RandomTokenMaskerOptions,
} from "./random-token";
export {
  BlockwiseMasker,
  blockwiseTokenMask,
  blockwiseTokenCount,
  type BlockwiseMaskOptions,
  type BlockwiseMaskerOptions,
} from "./blockwise";
export {
  AttentionMasker,
  clsAttentionScores,
  ATTENTION_MASK_DEFAULTS,
  type AttentionMaskerOptions,
} from "./attention-mask";
export { drawGmmlGrid, type GmmlGridOptions, type RgbImage } from "./grid";
