// Public API of @sit/core: explicit named exports only. This entry runs in a web page as well as
// under Node (no Node built-in is reachable from it); files, PNG and Node's backend start-up are
// @sit/core/node's (src/node.ts).

// Errors
export {
  SitError,
  ConfigError,
  ShapeError,
  IOError,
  BackendError,
  describeValue,
  invalidArgument,
  checkNumber,
  checkShape,
} from "./errors";

// Randomness
export { Rng, type RngState } from "./rng";
export { roundHalfEven } from "./round";

// Backends
export {
  initBackend,
  BACKEND_NAMES,
  type BackendName,
  type BackendInfo,
  type InitBackendOptions,
} from "./backend";
export type { WasmPaths } from "./backend-wasm";
// For @sit/core/node only (marked @internal): its build imports them from here rather than carry
// a second copy of the selection.
export { initBackendOn, type BackendHost } from "./backend";
export type { TfWasm, WasmHooks } from "./backend-wasm";
export { describeAdapter, softwareReason, type GPULike } from "./backend-webgpu";
export { isHostBackend } from "./host-backend";

// Modules and layers
export {
  Module,
  type StateDict,
  type LoadStateDictResult,
  type TorchLayout,
  type ParameterOptions,
} from "./nn/module";
export { truncNormal, kaimingUniform } from "./nn/init";
export { Linear, type LinearOptions } from "./nn/linear";
export { LayerNorm } from "./nn/layer-norm";
export { BatchNorm1d, type BatchNorm1dOptions } from "./nn/batch-norm";
export { gelu, activation, type ActivationName } from "./nn/activations";
export { DropPath, dropPath, type DropPathOptions } from "./nn/drop-path";
export {
  MLP,
  ProjectionHead,
  type MLPBlock,
  type MLPNorm,
  type MLPOptions,
} from "./nn/mlp";

// Optimisation
export {
  AdamW,
  type AdamWOptions,
  type AdamWState,
  type Gradients,
} from "./optim/adamw";
export {
  defaultNoDecay,
  type NamedParameters,
  type ParamGroupSpec,
} from "./optim/param-groups";
export { clipGradientsPerTensor, clipGradientsGlobalNorm } from "./optim/clip";
export {
  registerFlatAdamWKernel,
  registerFlatEmaKernel,
  flatAdamWKernel,
  flatEmaKernel,
  type FlatAdamWKernel,
  type FlatAdamWLayout,
  type FlatAdamWStepArgs,
  type FlatEmaKernel,
  type FlatLossScaleArgs,
  type FlatSkipFlag,
} from "./optim/fused-kernels";
export {
  registerPixelSourcesKernel,
  pixelSourcesKernel,
  type PixelSourcesKernel,
} from "./pixel-sources";
export {
  registerContrastiveLossKernel,
  contrastiveLossKernel,
  type ContrastiveLossKernel,
  registerMaskedLossKernel,
  maskedLossKernel,
  type MaskedLossKernel,
} from "./loss-kernels";
export { GradientAccumulator } from "./optim/accumulate";
export {
  cosineSchedule,
  cosineScheduleAt,
  type CosineScheduleOptions,
} from "./optim/schedules";

// IO: bytes in, bytes out (files are @sit/core/node's)
export { FIGURE_FONT, escapeXml, svgText, type TextOptions } from "./io/svg";
export {
  parseSafetensors,
  rawToTensor,
  toRawTensor,
  serializeSafetensors,
  type SafetensorsDtype,
  type RawTensor,
  type SafetensorsFile,
} from "./io/safetensors";
export { serializeCheckpoint, parseCheckpoint, type Checkpoint } from "./io/checkpoint";
export {
  linearWeightFromTorch,
  linearWeightToTorch,
  conv2dWeightFromTorch,
  conv2dWeightToTorch,
  convTranspose2dWeightFromTorch,
  convTranspose2dWeightToTorch,
  torchShapeOf,
  tensorToTorch,
  tensorFromTorch,
  toTorchStateDict,
  loadTorchStateDict,
} from "./io/torch";
