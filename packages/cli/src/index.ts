// Public API of @sit/cli: the `sit` command as functions (explicit named exports only).

export { runCli, CLI_VERSION } from "./cli";
export { EXIT, UsageError, processIO, type CliIO } from "./io";
// Commands
export {
  pretrain,
  pretrainSummaryLine,
  type PretrainRunOptions,
  type PretrainResult,
} from "./commands/pretrain";
export {
  reconstruct,
  type ReconstructOptions,
  type ReconstructResult,
} from "./commands/reconstruct";
export { attention, type AttentionOptions, type AttentionResult } from "./commands/attention";
export { exportWeights, type ExportOptions, type ExportResult } from "./commands/export";
export {
  exportSitTorch,
  importSitTorch,
  readSitTorch,
  writeSitTorch,
  SIT_TORCH_FILES,
  type SitTorchResult,
} from "./commands/sit-torch";
export { info, formatInfo, type InfoReport } from "./commands/info";
export {
  knn,
  fewshot,
  type KnnCommandOptions,
  type KnnCommandResult,
  type FewShotCommandOptions,
  type FewShotCommandResult,
} from "./commands/knn";
export { linear, type LinearCommandOptions, type LinearCommandResult } from "./commands/linear";
export {
  finetune,
  type FinetuneCommandOptions,
  type FinetuneCommandResult,
} from "./commands/finetune";
export type { EvalSourceOptions, EvalFeatureOptions } from "./commands/eval-common";
export type { PictureOptions } from "./commands/inspect-common";
// Configuration
export {
  pretrainSchema,
  dataSchema,
  trainSchema,
  monitorSchema,
  type PretrainConfig,
  type PretrainConfigInput,
  type DataConfig,
} from "./run-config";
export {
  DATASET_NAMES,
  resolveDataset,
  type DataSource,
  type DatasetKind,
  type SplitRole,
} from "./datasets";
export { RECIPE_NAMES, type RecipeName, type WeightsChoice } from "./recipes";
export { loadModel, randomModel, type LoadedModel, type RunInfo } from "./model";
export { renderGrid, writeGrid, heatMap, type GridOptions } from "./png";
// The pictures' pixels are @sit/eval's (shared with web pages); re-exported for the CLI's users.
export { heatColor, toRgbImages, type RgbImage } from "@sit/eval";
export {
  gridFigure,
  svgToPng,
  writeSvgAsPng,
  type Figure,
  type GridFigureOptions,
  type Rect,
} from "./figure";
