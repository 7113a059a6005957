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
export { Rng, type RngState } from "./rng";
export {
  initBackend,
  webgpuAdapter,
  BACKEND_NAMES,
  type BackendName,
  type BackendInfo,
  type InitBackendOptions,
} from "./backend";
export {
  Module,
  type StateDict,
  type LoadStateDictResult,
  type TorchLayout,
  type ParameterOptions,
} from "./nn/module";
export { writeFileAtomic } from "./io/atomic";
export {
  parseSafetensors,
  readSafetensors,
  loadSafetensors,
  rawToTensor,
  serializeSafetensors,
  writeSafetensors,
  type SafetensorsDtype,
  type RawTensor,
  type SafetensorsFile,
} from "./io/safetensors";
export { truncNormal, kaimingUniform } from "./nn/init";
export { Linear, type LinearOptions } from "./nn/linear";
export { LayerNorm } from "./nn/layer-norm";
export { saveCheckpoint, loadCheckpoint, type Checkpoint } from "./io/checkpoint";
export { AdamW, type AdamWOptions, type AdamWState, type Gradients } from "./optim/adamw";
export { BatchNorm1d, type BatchNorm1dOptions } from "./nn/batch-norm";
export { cosineSchedule, cosineScheduleAt, type CosineScheduleOptions } from "./optim/schedules";
export {
  defaultNoDecay,
  type NamedParameters,
  type ParamGroupSpec,
} from "./optim/param-groups";
