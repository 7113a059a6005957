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
