import { maskedCrc32c } from "./crc32c";
import { ProtoWriter } from "./protobuf";

// Field numbers from tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto.
const EVENT_WALL_TIME = 1;
const EVENT_STEP = 2;
const EVENT_FILE_VERSION = 3;
const EVENT_SUMMARY = 5;
const SUMMARY_VALUE = 1;
const VALUE_TAG = 1;
const VALUE_SIMPLE_VALUE = 2;
const VALUE_IMAGE = 4;
const VALUE_TENSOR = 8;
const VALUE_METADATA = 9;
// Summary.Image
const IMAGE_HEIGHT = 1;
const IMAGE_WIDTH = 2;
const IMAGE_COLORSPACE = 3;
const IMAGE_ENCODED = 4;
// SummaryMetadata and its PluginData
const METADATA_PLUGIN_DATA = 1;
const PLUGIN_NAME = 1;
const PLUGIN_CONTENT = 2;
// TensorProto (tensorflow/core/framework/tensor.proto) and TensorShapeProto
const TENSOR_DTYPE = 1;
const TENSOR_SHAPE = 2;
const TENSOR_STRING_VAL = 8;
const SHAPE_DIM = 2;
const DIM_SIZE = 1;
const DT_FLOAT = 1;
const DT_STRING = 7;
// tensorboard/plugins/hparams/plugin_data.proto
const HPARAMS_VERSION = 1;
const HPARAMS_SESSION_START = 3;
const HPARAMS_SESSION_END = 4;
const START_HPARAMS = 1;
const START_GROUP_NAME = 4;
const START_TIME_SECS = 5;
const END_STATUS = 1;
const END_TIME_SECS = 2;
const MAP_KEY = 1;
const MAP_VALUE = 2;
// google.protobuf.Value
const VALUE_NUMBER = 2;
const VALUE_STRING = 3;
const VALUE_BOOL = 4;

/** The `file_version` of the first event of every tfevents file. */
export const TFEVENTS_FILE_VERSION = "brain.Event:2";

/** Encode an `Event` carrying only `file_version` (the first record of a tfevents file). */
export function encodeFileVersionEvent(wallTimeSec: number): Uint8Array {
  return new ProtoWriter()
    .double(EVENT_WALL_TIME, wallTimeSec)
    .uint64(EVENT_STEP, 0)
    .string(EVENT_FILE_VERSION, TFEVENTS_FILE_VERSION)
    .finish();
}

/** Encode an `Event` with a `Summary` of scalar values (`simple_value`, float32). */
export function encodeScalarsEvent(
  wallTimeSec: number,
  step: number,
  scalars: ReadonlyArray<readonly [tag: string, value: number]>,
): Uint8Array {
  const summary = new ProtoWriter();
  for (const [tag, value] of scalars) {
    const v = new ProtoWriter().string(VALUE_TAG, tag).float(VALUE_SIMPLE_VALUE, value).finish();
    summary.bytes(SUMMARY_VALUE, v);
  }
  return new ProtoWriter()
    .double(EVENT_WALL_TIME, wallTimeSec)
    .uint64(EVENT_STEP, step)
    .bytes(EVENT_SUMMARY, summary.finish())
    .finish();
}

/** An `Event` at `step` whose `Summary` holds the given encoded `Summary.Value`s. */
function summaryEvent(wallTimeSec: number, step: number, values: Uint8Array[]): Uint8Array {
  const summary = new ProtoWriter();
  for (const v of values) summary.bytes(SUMMARY_VALUE, v);
  return new ProtoWriter()
    .double(EVENT_WALL_TIME, wallTimeSec)
    .uint64(EVENT_STEP, step)
    .bytes(EVENT_SUMMARY, summary.finish())
    .finish();
}

/** `SummaryMetadata` naming the TensorBoard plugin that reads a value, with its content bytes. */
function pluginMetadata(plugin: string, content: Uint8Array = new Uint8Array(0)): Uint8Array {
  const data = new ProtoWriter().string(PLUGIN_NAME, plugin);
  if (content.length > 0) data.bytes(PLUGIN_CONTENT, content);
  return new ProtoWriter().bytes(METADATA_PLUGIN_DATA, data.finish()).finish();
}

/** A picture for {@link encodeImageEvent}: encoded PNG bytes and their size. */
export interface EncodedImage {
  png: Uint8Array;
  width: number;
  height: number;
  /** 1 grey, 3 RGB, 4 RGBA (default 3). */
  channels?: 1 | 3 | 4;
}

/**
 * Encode an `Event` with an image summary (`Summary.Image`: the PNG bytes as they are), shown on
 * TensorBoard's Images tab under `tag`.
 */
export function encodeImageEvent(
  wallTimeSec: number,
  step: number,
  tag: string,
  image: EncodedImage,
): Uint8Array {
  const img = new ProtoWriter()
    .uint64(IMAGE_HEIGHT, image.height)
    .uint64(IMAGE_WIDTH, image.width)
    .uint64(IMAGE_COLORSPACE, image.channels ?? 3)
    .bytes(IMAGE_ENCODED, image.png)
    .finish();
  const value = new ProtoWriter().string(VALUE_TAG, tag).bytes(VALUE_IMAGE, img).finish();
  return summaryEvent(wallTimeSec, step, [value]);
}

/**
 * Encode an `Event` with a text summary (the text plugin: a scalar `DT_STRING` tensor holding
 * Markdown), shown on TensorBoard's Text tab under `tag`.
 */
export function encodeTextEvent(
  wallTimeSec: number,
  step: number,
  tag: string,
  markdown: string,
): Uint8Array {
  const tensor = new ProtoWriter()
    .uint64(TENSOR_DTYPE, DT_STRING)
    .bytes(TENSOR_SHAPE, new Uint8Array(0)) // a scalar: no dimensions
    .string(TENSOR_STRING_VAL, markdown)
    .finish();
  const value = new ProtoWriter()
    .string(VALUE_TAG, tag)
    .bytes(VALUE_METADATA, pluginMetadata("text"))
    .bytes(VALUE_TENSOR, tensor)
    .finish();
  return summaryEvent(wallTimeSec, step, [value]);
}

/** A hyper-parameter value as TensorBoard's HParams tab shows it. */
export type HparamValue = number | string | boolean;

/** The empty float vector the hparams plugin's summaries carry (their data is in the metadata). */
function nullTensor(): Uint8Array {
  const dim = new ProtoWriter().uint64(DIM_SIZE, 0).finish();
  const shape = new ProtoWriter().bytes(SHAPE_DIM, dim).finish();
  return new ProtoWriter().uint64(TENSOR_DTYPE, DT_FLOAT).bytes(TENSOR_SHAPE, shape).finish();
}

function hparamsEvent(wallTimeSec: number, tag: string, field: number, data: Uint8Array) {
  const content = new ProtoWriter().uint64(HPARAMS_VERSION, 0).bytes(field, data).finish();
  const value = new ProtoWriter()
    .string(VALUE_TAG, tag)
    .bytes(VALUE_METADATA, pluginMetadata("hparams", content))
    .bytes(VALUE_TENSOR, nullTensor())
    .finish();
  return summaryEvent(wallTimeSec, 0, [value]);
}

/**
 * Encode the hparams plugin's `session_start_info` for this run: its hyper-parameters (numbers,
 * strings, booleans), so that TensorBoard's HParams tab lists the run with them, beside the
 * scalars it logs (which the tab offers as metrics).
 */
export function encodeHparamsStartEvent(
  wallTimeSec: number,
  hparams: Readonly<Record<string, HparamValue>>,
  groupName = "",
): Uint8Array {
  const start = new ProtoWriter();
  for (const [key, v] of Object.entries(hparams)) {
    const value = new ProtoWriter();
    if (typeof v === "number") value.double(VALUE_NUMBER, v);
    else if (typeof v === "boolean") value.uint64(VALUE_BOOL, v ? 1 : 0);
    else value.string(VALUE_STRING, v);
    const entry = new ProtoWriter().string(MAP_KEY, key).bytes(MAP_VALUE, value.finish());
    start.bytes(START_HPARAMS, entry.finish());
  }
  if (groupName) start.string(START_GROUP_NAME, groupName);
  start.double(START_TIME_SECS, wallTimeSec);
  return hparamsEvent(
    wallTimeSec,
    "_hparams_/session_start_info",
    HPARAMS_SESSION_START,
    start.finish(),
  );
}

/** Status of a finished session (tensorboard/plugins/hparams/api.proto `Status`). */
export const HPARAMS_STATUS = { success: 1, failure: 2 } as const;

/** Encode the hparams plugin's `session_end_info`: how the run ended. */
export function encodeHparamsEndEvent(wallTimeSec: number, status: "success" | "failure") {
  const end = new ProtoWriter()
    .uint64(END_STATUS, HPARAMS_STATUS[status])
    .double(END_TIME_SECS, wallTimeSec)
    .finish();
  return hparamsEvent(wallTimeSec, "_hparams_/session_end_info", HPARAMS_SESSION_END, end);
}

/**
 * Frame `data` as one TFRecord: uint64 length (little-endian), masked CRC-32C of those 8 length
 * bytes, the data, masked CRC-32C of the data.
 */
export function frameRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  dv.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}
