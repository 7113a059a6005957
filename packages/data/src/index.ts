// Public API of @sit/data: explicit named exports only. This entry runs in a web page as well as
// under Node (datasets in memory, transforms, the loader); datasets on disk, image decoding,
// downloads and archives are @sit/data/node's.

// Datasets
export type { Dataset, Sample } from "./types";
export {
  ArrayDataset,
  FASHION_MNIST_CLASSES,
  MNIST_CLASSES,
  parseIdx,
  type IdxArray,
} from "./datasets/idx";
export { ConcatDataset, SubsetDataset } from "./datasets/compose";
// Download sources (the downloads themselves are @sit/data/node's)
export { DATASET_SOURCES, type DatasetSource, type RemoteFile } from "./download/sources";
export {
  DATASETS,
  DATASET_NAMES,
  isDatasetName,
  type DatasetEntry,
  type DatasetName,
} from "./datasets/catalog";
// Image operations and transforms
export {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  grayscale,
  horizontalFlip,
  hsvToRgb,
  rgbToHsv,
  rgbToLuma,
  solarize,
  type Factors,
} from "./transforms/color";
export { blurKernelSize, gaussianBlur, gaussianKernel1d } from "./transforms/blur";
export {
  DATASET_STATS,
  IMAGENET_STATS,
  normalize,
  type NormalizeStats,
} from "./transforms/normalize";
export {
  resampleRegions,
  type Interpolation,
  type SampleRegion,
} from "./transforms/resample";
export {
  resizeCenterCropRegion,
  sampleResizedCrop,
  type CropBox,
} from "./transforms/geometry";
export { packSamples, type PackedBatch } from "./transforms/batch";
export {
  ColorJitter,
  Normalize,
  RandomGaussianBlur,
  RandomGrayscale,
  RandomHorizontalFlip,
  RandomSolarize,
  type ColorJitterOptions,
  type ColorJitterParams,
  type GaussianBlurOptions,
  type TensorOp,
} from "./transforms/ops";
export {
  BatchTransform,
  RandomResizedCrop,
  ResizeCenterCrop,
  ViewPipeline,
  type RandomResizedCropOptions,
  type Sampler,
  type Size,
  type TransformOutput,
} from "./transforms/pipeline";
export {
  evalTransform,
  sitTwoViewTransform,
  type EvalTransformOptions,
  type SitTwoViewOptions,
} from "./transforms/sit";
export {
  runTwoViewTransform,
  runEvalTransform,
  runNormalizeStats,
  describeRun,
  type RunDescription,
  type RunNormalize,
  type RunImageSettings,
  type RunAugment,
} from "./transforms/run";
export {
  multiCropTransform,
  MULTI_CROP_DEFAULTS,
  type MultiCropOptions,
} from "./transforms/multi-crop";
// Augmentations for fine-tuning (DeiT's RandAugment and Mixup/CutMix)
export {
  randAugment,
  RAND_AUGMENT_OPS,
  type RandAugmentOp,
  type RandAugmentOptions,
} from "./transforms/rand-augment";
export {
  mixBatch,
  smoothOneHot,
  sampleBeta,
  sampleGamma,
  type MixupOptions,
  type MixInfo,
} from "./transforms/mixup";
// Loader
export {
  DataLoader,
  disposeBatch,
  type BatchInfo,
  type BatchOf,
  type ImagesBatch,
  type LoaderOptions,
  type ViewsBatch,
} from "./loader";
