export {
  VisionTransformer,
  vitTiny,
  vitSmall,
  vitBase,
  type VisionTransformerConfig,
  type VitForwardOptions,
  type VitOutput,
} from "./vision-transformer";
export { VIT_PRESETS, VIT_DEFAULTS, type VitPresetName } from "./presets";
export { Block, type BlockOptions, type DropScales } from "./block";
export { Attention, Mlp, PatchEmbed, PatchProjection } from "./layers";
export { LinearClassifier, SitClassifier } from "./heads";
export { interpolatePosEmbed, bicubicResampleMatrix } from "./pos-embed";
export { gradientCheckpoint } from "./checkpoint";
