// Public API of @sit/eval/node: what only Node can do. Feature caches in files, linear heads
// saved to and loaded from safetensors files, and the confusion matrix as a PNG file. Everything
// else (extraction, k-NN, probes, fine-tuning, few-shot, metrics) is @sit/eval's.
export {
  extractFeatures,
  hashModuleWeights,
  hashCheckpointFile,
  featureCachePath,
  readFeatureCache,
  writeFeatureCache,
} from "./feature-cache";
export { saveLinearHead, loadLinearHead } from "./linear-head-files";
export { renderConfusionMatrixPng, writeConfusionMatrixPng } from "./confusion-png";
