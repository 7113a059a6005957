import type * as tf from "@tensorflow/tfjs";
import {
  type GpuBuffer,
  type WebGpuInternals,
  bufferOf,
  copyElements,
  GPU_USAGE,
  newTensorInfo,
  setRawTensorData,
  tensorDataOf,
  VIEW_ALIGN,
} from "./flat-buffers";
import { bumpFlatVersion, bumpMirrorEpoch, flatVersion, noteMirror } from "./mirrors";

const GPU_STORAGE_COPY = GPU_USAGE.STORAGE | GPU_USAGE.COPY_SRC | GPU_USAGE.COPY_DST;

// Deferred write-back of a tensor whose new values lie in a range of a flat buffer (the flat
// AdamW's parameters, the flat EMA's teacher). Copying each tensor back into its own buffer after
// every update is one copyBufferToBuffer per tensor: ≈ 170 per model per step for a SiT, ≈ 340
// with the teacher, each a call into Dawn. The kernels of this package do not need the copy: they
// bind the tensor's range of the flat buffer instead (encode.ts's `viewOf`, through its mirror:
// mirrors.ts). So the copy is recorded only when something else may read the tensor's buffer.
// tfjs's webgpu backend reaches a tensor's data (its buffer, for a binding, an upload check, a
// read to the host) only through its `tensorMap.get`; that is wrapped to record the copy first,
// in command order (this package's `bufferOf` goes through it too), save for reference counting,
// which reads no values. Until then the tensor holds no buffer: the one it had goes back to
// tfjs's pool, which saves the model's size twice over while training (parameters and teacher).
// (Not an accessor on the tensor data's `resource`: V8 turns an object with an accessor added
// into a slow dictionary object for good, which slowed every step.) The flat buffer must keep the
// values: before it is written again, every tensor deferred to it that will not be re-noted to
// the new values is written back (`flushWriteBacks`), and so before it is disposed. A tensor
// disposed while deferred needs no copy.

interface Deferred {
  b: WebGpuInternals;
  dataId: object;
  flat: tf.TensorInfo;
  offset: number;
  size: number;
}

/** Deferred write-backs by the tensor's dataId. */
const deferred = new WeakMap<object, Deferred>();
/** Deferred write-backs by their flat tensor's dataId. */
const byFlat = new WeakMap<object, Set<Deferred>>();
/** Backends whose data access, disposal and submits are wrapped ({@link watch}). */
const watched = new WeakSet<object>();

function dependents(flat: tf.TensorInfo): Set<Deferred> {
  let set = byFlat.get(flat.dataId);
  if (!set) {
    set = new Set();
    byFlat.set(flat.dataId, set);
  }
  return set;
}

/** End `d`'s deferral without a copy; an arena left with no tensor in it goes back to the pool. */
function cancel(d: Deferred): void {
  deferred.delete(d.dataId);
  const set = byFlat.get(d.flat.dataId);
  set?.delete(d);
  const arena = arenaOf.get(d.flat.dataId);
  if (!arena) return;
  arena.claimed.delete(d.offset);
  if (set?.size === 0) {
    arenas.delete(arena.params);
    arenaOf.delete(d.flat.dataId);
    d.b.disposeData(d.flat.dataId);
  }
}

/** Record the copy of `d`'s range of its flat buffer into its own buffer, and end the deferral. */
function writeBack(d: Deferred): void {
  const { b } = d;
  bumpMirrorEpoch();
  // (Deferred, the tensor has no buffer: it takes one now.)
  const own = b.bufferManager.acquireBuffer(d.size * 4, GPU_STORAGE_COPY);
  tensorDataOf(b, d.dataId).resource = own;
  b.commandQueueOwnedIds.add(d.dataId);
  copyElements(b, bufferOf(b, d.flat), d.offset, own, 0, d.size);
  cancel(d);
}

/**
 * Wrap `b.tensorMap.get` (a deferred tensor's data is written back before anyone gets it, save
 * for reference counting; this package's own reads that need no values use `tensorDataOf`) and
 * `b.disposeData` (on a tensor's final disposal: a deferred one needs no copy; a flat one first
 * writes back every tensor deferred to it, while its buffer is still owned by the pending
 * commands), and `b.submitQueue` (the buffers that deferred tensors let go return to the pool
 * after it).
 */
function watch(b: WebGpuInternals): void {
  if (watched.has(b)) return;
  watched.add(b);
  const storage = b.tensorMap;
  const get = storage.get.bind(storage);
  setRawTensorData(b, get);
  // Reference counting reads no values (tfjs's tape shares a weight it saves for the backward,
  // then disposes its share): no write-back for it. (A depth, not a closure per call: these run
  // for every tensor a step makes and disposes.)
  let counting = 0;
  storage.get = (dataId: object) => {
    const d = counting > 0 ? undefined : deferred.get(dataId);
    if (d) writeBack(d);
    return get(dataId);
  };
  const refs = b as unknown as Record<"incRef" | "decRef" | "refCount", (id: object) => unknown>;
  for (const name of ["incRef", "decRef", "refCount"] as const) {
    const f = refs[name].bind(b);
    refs[name] = (dataId: object) => {
      counting++;
      try {
        return f(dataId);
      } finally {
        counting--;
      }
    };
  }
  const submit = b.submitQueue.bind(b);
  b.submitQueue = () => {
    submit();
    const buffers = toRelease.get(b);
    if (buffers?.length) for (const x of buffers.splice(0)) b.bufferManager.releaseBuffer(x);
  };
  const dispose = b.disposeData.bind(b);
  b.disposeData = (dataId: object, force?: boolean): boolean => {
    // (Called for every tensor a step disposes: the common case is two lookups each.)
    const d = deferred.get(dataId);
    const set = byFlat.get(dataId);
    if ((d || set?.size) && storage.has(dataId)) {
      const data = get(dataId) as unknown as { refCount: number };
      if (force || data.refCount <= 1) {
        if (d) cancel(d);
        if (set) for (const x of [...set]) writeBack(x);
      }
    }
    // (tfjs's disposal reads the reference count, and releases the buffer on the last one.)
    counting++;
    try {
      return dispose(dataId, force);
    } finally {
      counting--;
    }
  };
}

/** Buffers of deferred tensors to return to the pool after the next submit, per backend. */
const toRelease = new WeakMap<object, GpuBuffer[]>();

function releaseAfterSubmit(b: WebGpuInternals, buffer: GpuBuffer): void {
  let list = toRelease.get(b);
  if (!list) {
    list = [];
    toRelease.set(b, list);
  }
  list.push(buffer);
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
  bumpMirrorEpoch();
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
  // Its own buffer goes back to the pool meanwhile; the write-back takes a new one. Pending
  // commands may still read it: released after their submit, as tfjs releases a disposed one.
  bufferOf(b, t);
  const data = tensorDataOf(b, t.dataId);
  releaseAfterSubmit(b, data.resource as GpuBuffer);
  data.resource = null;
  const d: Deferred = {
    b,
    dataId: t.dataId,
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

// Gradient arenas. The flat AdamW gathers every gradient into one flat buffer laid out as its
// flat parameters: a copy per tensor per step (≈ 170 for a SiT). A backward kernel that makes the
// gradient of a parameter deferred to a flat AdamW's buffer (`gradientFor`) writes it straight
// into the range of that layout in an arena, a buffer laid out as the parameters' flat buffer,
// and the gradient tensor is deferred to it (with no buffer of its own until something else reads
// it). The AdamW then updates from the arena, gathering only the gradients that are not in it
// (`adamwGradients`). Each range is claimed once (a parameter used twice gets its second
// gradient in a buffer of its own, and tfjs adds the two); the arena goes back to the pool once
// no gradient is deferred to it (in a training step: when the optimiser's caller disposes them).

interface Arena {
  /** The flat parameters' dataId. */
  params: object;
  grads: tf.TensorInfo;
  /** Offsets whose range holds a deferred gradient. */
  claimed: Set<number>;
}

/** Arenas by the flat parameters' dataId, and by their own. */
const arenas = new WeakMap<object, Arena>();
const arenaOf = new WeakMap<object, Arena>();

/**
 * A new tensor for the gradient of `param` (of its shape): in an arena range when `param` is
 * deferred to a flat buffer at a usable offset and that range is free, else with a buffer of its
 * own. Its values are written through `viewOf`, which binds the arena range.
 */
export function gradientFor(b: WebGpuInternals, param: tf.TensorInfo): tf.TensorInfo {
  const held = deferred.get(param.dataId);
  if (!held || !flatRangeUsable(held.offset)) return newTensorInfo(b, [...param.shape]);
  let arena = arenas.get(held.flat.dataId);
  if (!arena) {
    const grads = newTensorInfo(b, [...held.flat.shape]);
    arena = { params: held.flat.dataId, grads, claimed: new Set() };
    arenas.set(held.flat.dataId, arena);
    arenaOf.set(grads.dataId, arena);
    bumpFlatVersion(grads);
  }
  if (arena.claimed.has(held.offset)) return newTensorInfo(b, [...param.shape]);
  arena.claimed.add(held.offset);
  const g = b.makeTensorInfo([...param.shape], "float32");
  noteMirror(g, arena.grads, held.offset, flatVersion(arena.grads));
  const d: Deferred = {
    b,
    dataId: g.dataId,
    flat: arena.grads,
    offset: held.offset,
    size: held.size,
  };
  deferred.set(g.dataId, d);
  dependents(arena.grads).add(d);
  return g;
}

/**
 * The flat gradients of a flat AdamW step over `flatParams` (`grads` in its layout, at
 * `offsets`): its arena, with every gradient that is not already in its range copied in; or null
 * when no gradient is (then the caller gathers them all into a buffer of its own). The arena is
 * only read by the step.
 */
export function arenaGradients(
  b: WebGpuInternals,
  flatParams: tf.TensorInfo,
  grads: tf.TensorInfo[],
  offsets: ArrayLike<number>,
): tf.TensorInfo | null {
  const arena = arenas.get(flatParams.dataId);
  if (!arena) return null;
  const keep = new Set<object>();
  const missing: number[] = [];
  grads.forEach((g, i) => {
    const d = deferred.get(g.dataId);
    if (d && d.flat.dataId === arena.grads.dataId && d.offset === offsets[i]) keep.add(g.dataId);
    else missing.push(i);
  });
  // (With none kept, flushing could empty the arena and return it to the pool.)
  if (keep.size === 0) return null;
  flushWriteBacks(arena.grads, keep);
  const target = bufferOf(b, arena.grads);
  for (const i of missing)
    copyElements(b, bufferOf(b, grads[i]), 0, target, offsets[i], offsets[i + 1] - offsets[i]);
  return arena.grads;
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
