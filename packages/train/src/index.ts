export type { Recipe, RecipeState, StepResult, ScheduleValues, MaybePromise } from "./recipe";
export { fit } from "./fit";
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
export { JsonlSink, type JsonlSinkOptions } from "./sinks/jsonl";
export { TensorBoardSink } from "./sinks/tensorboard";
export {
  resumeFrom,
  writeCheckpoint,
  loadCheckpointFile,
  listCheckpoints,
  checkpointFileName,
  LATEST_POINTER,
  type TrainProgress,
  type LoadedCheckpoint,
  type ResumeFromOptions,
  type WriteCheckpointOptions,
} from "./checkpoint";
export { defaultCheckpointIO, type CheckpointIO } from "./checkpoint-io";
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
