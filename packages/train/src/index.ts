// Public API of @sit/train: explicit named exports only. This entry runs in a web page as well as
// under Node; checkpoints in a folder, SIGINT / SIGTERM and the file sinks are @sit/train/node's.
export type {
  Recipe,
  RecipeState,
  StepResult,
  LaunchedStep,
  ScheduleValues,
  MaybePromise,
} from "./recipe";
export { readLaunchedStep } from "./step-runner";
export { fit, fitOn } from "./fit";
export type { FitHost, CheckpointFolder } from "./fit-host";
export type {
  FitOptions,
  FitResult,
  CheckpointSchedule,
  MonitorOptions,
  MonitorContext,
} from "./options";
export { countImages, type BatchSource } from "./loader";
export type {
  TrainEvent,
  EventBase,
  StartEvent,
  StepEvent,
  EpochEvent,
  MonitorEvent,
  CheckpointEvent,
  WarningEvent,
  EndEvent,
  StopReason,
  MetricSink,
} from "./events";
export {
  ConsoleProgressSink,
  type ConsoleProgressOptions,
  type ProgressStream,
} from "./sinks/console";
export {
  serializeTrainCheckpoint,
  parseTrainCheckpoint,
  trainCheckpoint,
  readTrainCheckpoint,
  checkpointFileName,
  checkpointStep,
  checkpointCandidates,
  latestPointer,
  parseCheckpointFolder,
  LATEST_POINTER,
  type TrainCheckpointInfo,
  type TrainProgress,
  type LoadedCheckpoint,
  type ResumeFromOptions,
  type WriteCheckpointOptions,
} from "./checkpoint-format";
export type { CheckpointIO } from "./checkpoint-io";
export {
  NonFiniteLossError,
  TensorLeakError,
  LeakDetector,
  type LeakCheckOptions,
} from "./guards";
export { crc32c, maskedCrc32c } from "./tensorboard/crc32c";
export {
  encodeScalarsEvent,
  encodeFileVersionEvent,
  encodeImageEvent,
  encodeTextEvent,
  encodeHparamsStartEvent,
  encodeHparamsEndEvent,
  frameRecord,
  TFEVENTS_FILE_VERSION,
  type EncodedImage,
  type HparamValue,
} from "./tensorboard/event";
