export {
  type FeatureSet,
  checkFeatureSet,
  featureCount,
  selectRows,
  l2NormalizeRows,
} from "./feature-set";
export { knnEval, type KnnOptions, type KnnResult } from "./knn";
export {
  fewShot,
  sampleEpisodes,
  meanConfidence,
  firstKPerClass,
  type FewShotOptions,
  type FewShotStats,
  type FewShotClassifier,
  type Episode,
} from "./few-shot";
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
export {
  renderConfusionMatrixPng,
  writeConfusionMatrixPng,
  type ConfusionPngOptions,
} from "./confusion-png";
export {
  hashModuleWeights,
  hashCheckpointFile,
  featureCachePath,
  readFeatureCache,
  writeFeatureCache,
  type FeatureCacheKey,
} from "./feature-cache";
