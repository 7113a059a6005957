// Public API of @sit/eval: explicit named exports only. This entry runs in a web page as well as
// under Node; feature caches in files, linear heads on disk and PNG pictures are @sit/eval/node's.
// Features
export {
  type FeatureSet,
  checkFeatureSet,
  selectRows,
  l2NormalizeRows,
} from "./feature-set";
export {
  extractFeatures,
  extractFeaturesOn,
  type FeatureCacheHost,
  type FeatureCacheKey,
  type Backbone,
  type TokenBackbone,
  type TokenOutput,
  type Pool,
  type ExtractOptions,
  type ExtractedFeatures,
} from "./extract";
export type { ImageTransform, SampleTransform } from "./images";
// Protocols
export { knnEval, KNN_DEFAULTS, type KnnOptions, type KnnResult } from "./knn";
export { TopKSelector } from "./top-k";
export {
  linearProbe,
  LINEAR_PROBE_DEFAULTS,
  type LinearProbeOptions,
  type LinearProbeResult,
  type ProbeEpoch,
} from "./linear-probe";
export { LinearHead, type LinearHeadOptions } from "./linear-head";
export { SgdMomentum } from "./sgd";
export {
  fineTune,
  FINE_TUNE_DEFAULTS,
  evaluateClassifier,
  type FineTuneOptions,
  type FineTuneResult,
  type FineTuneEpoch,
  type ClassifierHead,
} from "./fine-tune";
export { layerDecayGroups, vitLayerId, fineTuneNoDecay } from "./layer-decay";
export {
  fewShot,
  FEW_SHOT_DEFAULTS,
  sampleEpisodes,
  meanConfidence,
  firstKPerClass,
  type FewShotOptions,
  type FewShotStats,
  type FewShotClassifier,
  type Episode,
} from "./few-shot";
// Metrics
export {
  topKAccuracy,
  predictClasses,
  accuracy,
  confusionMatrix,
  perClassAccuracy,
  meanPerClassAccuracy,
  classRank,
  type Scores,
  type ConfusionMatrix,
} from "./metrics";
export { confusionMatrixSvg, type ConfusionPngOptions } from "./confusion-svg";
// Pictures of what a backbone attends to (shared by `sit attention` and web pages)
export {
  clsAttention,
  attentionMaps,
  overlayAttention,
  attentionScaleMax,
  ATTENTION_SCALE_FLOOR,
  heatColor,
  toRgbImages,
  inEvalMode,
  type RgbImage,
} from "./attention-maps";
