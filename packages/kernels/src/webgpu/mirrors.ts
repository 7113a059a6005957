import type * as tf from "@tensorflow/tfjs";
import type { WebGpuInternals } from "./flat-buffers";

// Where a tensor's values also lie in a flat buffer. The flat AdamW scatters each parameter from
// its flat buffer into the parameter's own buffer every step, and the flat EMA then needs the
// same student values in one flat buffer again: gathering them back is one copy command per
// tensor (≈ 170 for a SiT student) for values already sitting in the optimiser's buffer. A
// mirror records "tensor data X equals elements [offset, offset + size) of flat tensor F as
// written at F's version v"; it holds while F is alive and unwritten since (its version
// unchanged) and X unwritten since (an in-place write of X goes through markWritten, which drops
// its mirror; tfjs itself never writes a tensor's buffer in place).

interface Mirror {
  flat: tf.TensorInfo;
  offset: number;
  version: number;
}

const mirrors = new WeakMap<object, Mirror>();
const versions = new WeakMap<object, number>();

// Counts every change to what the host knows of where tensors' values lie (mirrors, flat
// versions, deferred write-backs): a captured step (step-capture.ts) replays the binding of
// flat ranges that the host knew when it was recorded, and holds only while nothing changed.
let epoch = 0;

/** The count of changes to mirrors, flat versions and deferred write-backs so far. */
export function mirrorEpoch(): number {
  return epoch;
}

/** Note a change that {@link mirrorEpoch} counts (write-back.ts's deferrals). */
export function bumpMirrorEpoch(): void {
  epoch++;
}

/** After writing flat tensor `flat`: the version under which mirrors of it are noted now. */
export function bumpFlatVersion(flat: tf.TensorInfo): number {
  epoch++;
  const v = (versions.get(flat.dataId) ?? 0) + 1;
  versions.set(flat.dataId, v);
  return v;
}

/** The version under which mirrors of `flat` are noted now (0 before its first write). */
export function flatVersion(flat: tf.TensorInfo): number {
  return versions.get(flat.dataId) ?? 0;
}

/** Note that `t`'s data equals `flat`'s elements from `offset` (at `flat`'s version `version`). */
export function noteMirror(
  t: tf.TensorInfo,
  flat: tf.TensorInfo,
  offset: number,
  version: number,
): void {
  epoch++;
  // Updated in place where one is noted already (every step, for every parameter): no garbage.
  const m = mirrors.get(t.dataId);
  if (m) {
    m.flat = flat;
    m.offset = offset;
    m.version = version;
  } else mirrors.set(t.dataId, { flat, offset, version });
}

/** Forget `t`'s mirror (its buffer was written in place). */
export function dropMirror(t: tf.TensorInfo): void {
  epoch++;
  mirrors.delete(t.dataId);
}

/** `t`'s mirror if it still holds: its flat tensor alive and unwritten since. */
export function mirrorOf(
  b: WebGpuInternals,
  t: tf.TensorInfo,
): { flat: tf.TensorInfo; offset: number } | undefined {
  const m = mirrors.get(t.dataId);
  if (!m || versions.get(m.flat.dataId) !== m.version || !b.tensorMap.has(m.flat.dataId))
    return undefined;
  return m;
}

/**
 * The flat tensor that mirrors all of `tensors` (one flat tensor for all), with each tensor's
 * offset in it; undefined if any has no valid mirror or they lie in different flat tensors.
 */
export function commonMirror(
  b: WebGpuInternals,
  tensors: tf.TensorInfo[],
): { flat: tf.TensorInfo; offsets: number[] } | undefined {
  const offsets: number[] = [];
  let flat: tf.TensorInfo | undefined;
  for (let i = 0; i < tensors.length; i++) {
    const m = mirrorOf(b, tensors[i]);
    if (!m || (flat && m.flat.dataId !== flat.dataId)) return undefined;
    flat = m.flat;
    offsets.push(m.offset);
  }
  return flat ? { flat, offsets } : undefined;
}
