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
} from "./config";
export {
  gradientsByName,
  corruptViews,
  optimSchedules,
  twoViews,
  type TwoViewBatch,
  type ImageBatch,
  type OptimSchedules,
} from "./common";
export { SitNetwork, buildSitNetwork, buildBackbone, type SitNetworkOutput } from "./sit-network";
export {
  SitRecipe,
  createSiT,
  type SitStepInputs,
  type SitStepHyper,
  type SitStepDetails,
} from "./sit";
