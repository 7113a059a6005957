import type * as tf from "@tensorflow/tfjs";
import {
  type GpuBuffer,
  type WebGpuInternals,
  bufferOf,
  copyElements,
  setRawTensorData,
  VIEW_ALIGN,
} from "./flat-buffers";

// Deferred write-back of a tensor whose new values lie in a range of a flat buffer (the flat
// AdamW's parameters, the flat EMA's teacher). Copying each tensor back into its own buffer after
// every update is one copyBufferToBuffer per tensor: ≈ 170 per model per step for a SiT, ≈ 340
// with the teacher, each a call into Dawn. The kernels of this package do not need the copy: they
// bind the tensor's range of the flat buffer instead (encode.ts's `viewOf`, through its mirror:
// mirrors.ts). So the copy is recorded only when something else may read the tensor's own
// buffer. tfjs's webgpu backend reaches a tensor's data (its buffer, for a binding, an upload
// check, a read to the host, a reshape's shared reference) only through its `tensorMap.get`; that
// is wrapped to record the copy first, in command order (this package's `bufferOf` goes through
// it too). Until then the own buffer holds stale values, which nothing reads. (Not an accessor on
// the tensor data's `resource`: V8 turns an object with an accessor added into a slow dictionary
// object for good, which slowed every step.) The flat buffer must keep the values: before it is
// written again, every tensor deferred to it that will not be re-noted to the new values is
// written back (`flushWriteBacks`), and so before it is disposed. A tensor disposed while deferred
// needs no copy.

interface Deferred {
  b: WebGpuInternals;
  dataId: object;
  own: GpuBuffer;
  flat: tf.TensorInfo;
  offset: number;
  size: number;
}

/** Deferred write-backs by the tensor's dataId. */
const deferred = new WeakMap<object, Deferred>();
/** Deferred write-backs by their flat tensor's dataId. */
const byFlat = new WeakMap<object, Set<Deferred>>();
/** Backends whose `tensorMap.get` and `disposeData` are wrapped ({@link watch}). */
const watched = new WeakSet<object>();

function dependents(flat: tf.TensorInfo): Set<Deferred> {
  let set = byFlat.get(flat.dataId);
  if (!set) {
    set = new Set();
    byFlat.set(flat.dataId, set);
  }
  return set;
}

/** End `d`'s deferral without a copy. */
function cancel(d: Deferred): void {
  deferred.delete(d.dataId);
  byFlat.get(d.flat.dataId)?.delete(d);
}

/** Record the copy of `d`'s range of its flat buffer into its own buffer, and end the deferral. */
function writeBack(d: Deferred): void {
  cancel(d);
  const { b } = d;
  b.commandQueueOwnedIds.add(d.dataId);
  copyElements(b, bufferOf(b, d.flat), d.offset, d.own, 0, d.size);
}

/**
 * Wrap `b.tensorMap.get` (a deferred tensor's data is written back before anyone gets it; this
 * package's own reads that need no values use `tensorDataOf`) and `b.disposeData` (on a
 * tensor's final disposal: a deferred one needs no copy; a flat one first writes back every
 * tensor deferred to it, while its buffer is still owned by the pending commands).
 */
function watch(b: WebGpuInternals): void {
  if (watched.has(b)) return;
  watched.add(b);
  const storage = b.tensorMap;
  const get = storage.get.bind(storage);
  setRawTensorData(b, get);
  storage.get = (dataId: object) => {
    const d = deferred.get(dataId);
    if (d) writeBack(d);
    return get(dataId);
  };
  const dispose = b.disposeData.bind(b);
  b.disposeData = (dataId: object, force?: boolean): boolean => {
    // (Called for every tensor a step disposes: the common case is one lookup each.)
    const d = deferred.get(dataId);
    const set = byFlat.get(dataId);
    if ((d || set?.size) && storage.has(dataId)) {
      const data = get(dataId) as unknown as { refCount: number };
      if (force || data.refCount <= 1) {
        if (d) cancel(d);
        if (set) for (const x of [...set]) writeBack(x);
      }
    }
    return dispose(dataId, force);
  };
}

/**
 * Defer writing `t`'s new values, elements [`offset`, `offset` + its size) of `flat`, into `t`'s
 * own buffer until something may read that buffer. `t` must own its buffer (tfjs's reference
 * count 1, as the flat kernels' in-place updates require) and have a mirror of that range
 * (mirrors.ts).
 */
export function deferWriteBack(
  b: WebGpuInternals,
  t: tf.TensorInfo,
  flat: tf.TensorInfo,
  offset: number,
): void {
  watch(b);
  const held = deferred.get(t.dataId);
  if (held) {
    if (held.flat.dataId !== flat.dataId) {
      byFlat.get(held.flat.dataId)?.delete(held);
      dependents(flat).add(held);
    }
    held.flat = flat;
    held.offset = offset;
    return;
  }
  const d: Deferred = {
    b,
    dataId: t.dataId,
    own: bufferOf(b, t),
    flat,
    offset,
    size: t.shape.reduce((p, q) => p * q, 1),
  };
  deferred.set(t.dataId, d);
  dependents(flat).add(d);
}

/**
 * Before `flat` is written: write back every tensor deferred to it except those in `keep` (the
 * dataIds that the writer re-notes to the new values of the same ranges).
 */
export function flushWriteBacks(flat: tf.TensorInfo, keep: ReadonlySet<object>): void {
  const set = byFlat.get(flat.dataId);
  if (!set) return;
  for (const d of [...set]) if (!keep.has(d.dataId)) writeBack(d);
}

let enabled = true;

/**
 * Whether the kernels on webgpu bind a parameter's (or teacher tensor's) range of the flat
 * AdamW's (or EMA's) buffer, which lets those leave each tensor's copy back into its own buffer
 * until something else reads it (`true`, the default); or bind each tensor's own buffer, copied
 * back at once after every update (`false`): for comparisons and benchmarks. The values are the
 * same.
 */
export function setWebgpuWriteBackDeferral(on: boolean): void {
  enabled = on;
}

/**
 * Whether a tensor at `offset` floats into a flat buffer may be bound there (and its write-back
 * deferred): a binding must start aligned.
 */
export function flatRangeUsable(offset: number): boolean {
  return enabled && offset % VIEW_ALIGN === 0;
}

/** Whether `t`'s own buffer waits for a deferred write-back (for tests). */
export function isWriteBackDeferred(t: tf.TensorInfo): boolean {
  return deferred.has(t.dataId);
}
