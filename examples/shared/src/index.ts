// The pipeline shared by the paper examples (one thin config per dataset) and the tools.
export {
  PAPER_DATASETS,
  DATASET_SPECS,
  datasetSpec,
  readerRoot,
  type PaperDataset,
  type DatasetSpec,
  type ExampleSplits,
} from "./datasets";
export {
  PAPER_SIT_CONFIG,
  exampleSchema,
  readExampleConfig,
  sitConfigOf,
  deepMerge,
  type ExampleConfig,
  type ExampleConfigInput,
} from "./config";
export { parseExampleArgs, USAGE, type ExampleFlags } from "./args";
export { StageStore, type StageRecord } from "./stage-store";
export {
  pretrain,
  saveWeights,
  saveWeightsAsync,
  readBackTensors,
  loadWeights,
  knnStage,
  fineTuneStage,
  type PretrainOptions,
  type PretrainSummary,
  type KnnSummary,
  type FineTuneSummary,
  type StageIO,
} from "./stages";
export {
  SMOKE,
  planRun,
  runExample,
  runExampleCli,
  type RunPlan,
  type RunOptions,
  type ExampleResults,
} from "./run";
