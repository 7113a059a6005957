// Public API of @sit/train/node: what only Node can do. `fit` with checkpoints in a folder and
// SIGINT / SIGTERM, the checkpoint folder itself, and the sinks that write files. Everything else
// is @sit/train's, which runs in a web page as well: one checkpoint's bytes
// (serializeTrainCheckpoint / parseTrainCheckpoint) are exactly the files written here.
export { fit } from "./fit-node";
export {
  resumeFrom,
  writeCheckpoint,
  loadCheckpointFile,
  listCheckpoints,
  defaultCheckpointIO,
} from "./checkpoint";
export { JsonlSink, type JsonlSinkOptions } from "./sinks/jsonl";
export { TensorBoardSink } from "./sinks/tensorboard";
