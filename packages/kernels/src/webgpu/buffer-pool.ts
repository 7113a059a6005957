import * as tf from "@tensorflow/tfjs";
import { webgpuInternals } from "./flat-buffers";

// tfjs's WebGPU buffer pool keeps freed buffers in one list per (size, usage) and hands back the
// most recently freed one. A training step frees its buffers in an order that is not the order it
// took them, so the next step gets the same sizes from a permuted list: the kernels see other
// buffers, and every dispatch encoded directly (encode.ts) whose bindings moved needs a new bind
// group (≈ 200 of the SiT step's ≈ 350 dispatches, in every step, measured on lavapipe). Putting
// every free list in one fixed order at the same point of each step makes the steps take the
// same buffers, so their bind groups come from the cache.
//
// The same training loops also get a pool whose every call takes constant time (installed by
// the first settle). tfjs 4.22's builds a string key per call, and its release reads the buffer's
// `size` and `usage` (getters into the WebGPU implementation) and searches the list of buffers in
// use with that key (≈ 65 long on a SiT step): ≈ 325 acquires and releases a step took ≈ 1.6 ms
// of host time on lavapipe.

/** The fields of tfjs-backend-webgpu 4.22's BufferManager that the constant-time pool replaces. */
export interface TfjsBufferManager {
  device: { createBuffer(desc: object): GpuPoolBuffer };
  freeBuffers: Map<string | number, GpuPoolBuffer[]>;
  usedBuffers: Map<string | number, Iterable<GpuPoolBuffer>>;
  numUsedBuffers: number;
  numFreeBuffers: number;
  numBytesUsed: number;
  numBytesAllocated: number;
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): object;
  releaseBuffer(buffer: object, reuse?: boolean): void;
  dispose(): void;
}

interface GpuPoolBuffer {
  size: number;
  usage: number;
  destroy(): void;
  /** The buffer's (size, usage) key ({@link USAGE_BITS}), set when the pool first hands it out. */
  [POOL_KEY]?: number;
  /** When settleBufferPool first saw it. */
  [POOL_RANK]?: number;
}

// Kept on the buffer objects themselves, not in weak maps: a SiT step makes ≈ 325 acquires and
// releases and ≈ 600 ranks, a property read is cheaper than a weak map's lookup, and a weak map's
// entries add to the garbage collector's work.
const POOL_KEY = Symbol("sitPoolKey");
const POOL_RANK = Symbol("sitPoolRank");

/** WebGPU's usage flags fit in 10 bits: a (size, usage) pair as one number. */
const USAGE_BITS = 1024;

const constantTime = new WeakSet<object>();

/**
 * Give tfjs's buffer manager `pool` acquire and release calls of constant time, with tfjs's
 * behaviour: free lists per (size, usage) in `freeBuffers` (most recently freed handed out
 * first; settleBufferPool orders them), the same counters (tf.memory's GPU bytes), and release
 * of a buffer the pool did not hand out an error. The buffers in use (and their keys) move into
 * a set and a weak map; the keys become numbers. Nothing changes where acquire or release is
 * already wrapped on the instance.
 */
export function installConstantTimePool(pool: TfjsBufferManager): void {
  if (constantTime.has(pool)) return;
  // Calls already wrapped on this pool (a benchmark's peak-memory probe) stay as they are: the
  // pool is left as tfjs made it rather than losing the wrapper.
  const own = (name: string) => Object.hasOwn(pool, name);
  if (own("acquireBuffer") || own("releaseBuffer")) return;
  constantTime.add(pool);
  const inUse = new Set<GpuPoolBuffer>();
  const free = new Map<string | number, GpuPoolBuffer[]>();
  /** The free list of a (size, usage) key, made on first use. */
  const freeList = (key: number) => {
    let list = free.get(key);
    if (!list) {
      list = [];
      free.set(key, list);
    }
    return list;
  };
  const numeric = (key: string | number, buffer: GpuPoolBuffer) =>
    typeof key === "number" ? key : buffer.size * USAGE_BITS + buffer.usage;
  for (const [key, list] of pool.freeBuffers)
    for (const buffer of list) freeList(numeric(key, buffer)).push(buffer);
  for (const [key, list] of pool.usedBuffers)
    for (const buffer of list) {
      buffer[POOL_KEY] = numeric(key, buffer);
      inUse.add(buffer);
    }
  let disposed = false;
  pool.freeBuffers = free;
  // tfjs's dispose destroys every buffer of these lists (a set iterates as its list did).
  pool.usedBuffers = new Map([["in use", inUse]]);
  pool.acquireBuffer = (size, usage, mappedAtCreation = false, reuse = true) => {
    if (!(usage >= 0 && usage < USAGE_BITS))
      throw new Error(`@sit/kernels buffer pool: usage ${usage} is outside WebGPU's 10 flag bits`);
    const key = size * USAGE_BITS + usage;
    let buffer: GpuPoolBuffer | undefined;
    if (reuse) {
      buffer = freeList(key).pop();
      if (buffer) pool.numFreeBuffers--;
    }
    if (!buffer) {
      buffer = pool.device.createBuffer({ size, usage, mappedAtCreation });
      pool.numBytesAllocated += size;
    }
    buffer[POOL_KEY] = key;
    inUse.add(buffer);
    pool.numUsedBuffers++;
    pool.numBytesUsed += size;
    return buffer;
  };
  pool.releaseBuffer = (buffer, reuse = true) => {
    if (disposed) return;
    const key = (buffer as GpuPoolBuffer)[POOL_KEY];
    if (key === undefined || !inUse.delete(buffer as GpuPoolBuffer))
      throw new Error("Cannot find the buffer in buffer manager");
    const size = Math.floor(key / USAGE_BITS);
    pool.numUsedBuffers--;
    pool.numBytesUsed -= size;
    if (reuse) {
      freeList(key).push(buffer as GpuPoolBuffer);
      pool.numFreeBuffers++;
    } else {
      (buffer as GpuPoolBuffer).destroy();
      pool.numBytesAllocated -= size;
    }
  };
  const dispose = pool.dispose.bind(pool);
  pool.dispose = () => {
    disposed = true;
    dispose();
  };
}

let seen = 0;

function rank(buffer: GpuPoolBuffer): number {
  let r = buffer[POOL_RANK];
  if (r === undefined) {
    r = seen++;
    buffer[POOL_RANK] = r;
  }
  return r;
}

/**
 * On webgpu, sort each of tfjs's free-buffer lists by when this function first saw the buffer,
 * the earliest handed out first (and, at the first call, make the pool's calls constant-time);
 * elsewhere nothing. Call it once per training step, at the same
 * point of every step (the recipes do, before the optimiser's update).
 */
export function settleBufferPool(): void {
  if (tf.getBackend() !== "webgpu") return;
  const b = webgpuInternals(tf.backend());
  const pool = b.bufferManager as unknown as Partial<TfjsBufferManager>;
  if (!(pool.freeBuffers instanceof Map) || !(pool.usedBuffers instanceof Map)) return;
  installConstantTimePool(pool as TfjsBufferManager);
  pool.freeBuffers.forEach(settleList);
}

/** Rank a free list's buffers and sort it, earliest seen last (acquireBuffer pops from the end). */
function settleList(list: GpuPoolBuffer[]): void {
  // Most lists are in order already from the step before: checking costs no garbage, sorting does.
  let sorted = true;
  let previous = Number.POSITIVE_INFINITY;
  for (let i = 0; i < list.length; i++) {
    const r = rank(list[i]);
    if (r > previous) sorted = false;
    previous = r;
  }
  if (!sorted) list.sort((x, y) => rank(y) - rank(x));
}

/** Where a buffer stands in a constant-time pool: free in it, handed out, or not one of its own. */
export type PoolStanding = "free" | "in use" | "other";

/** What step-capture.ts needs of `b`'s pool: null unless it is the constant-time one. */
export interface OwnedPool {
  standing(buffer: object): PoolStanding;
  /** The buffers handed out now (a copy). */
  inUse(): Set<object>;
  /** Take free buffers out of the pool for good (false, taking none, if one is not free). */
  take(buffers: Iterable<object>): boolean;
  /** Hand buffers taken with `take` back as free. */
  giveBack(buffers: Iterable<object>): void;
}

/** `pool`'s {@link OwnedPool}, or null where installConstantTimePool has not made it constant-time. */
export function ownedPool(pool: unknown): OwnedPool | null {
  const p = pool as TfjsBufferManager;
  if (!constantTime.has(p)) return null;
  const inUse = (p.usedBuffers as Map<string, Set<GpuPoolBuffer>>).get("in use")!;
  const free = p.freeBuffers as Map<number, GpuPoolBuffer[]>;
  const isFree = (b: GpuPoolBuffer) => {
    const key = b[POOL_KEY];
    return key !== undefined && !inUse.has(b) && (free.get(key)?.includes(b) ?? false);
  };
  return {
    inUse: () => new Set(inUse),
    standing: (buffer) => {
      const b = buffer as GpuPoolBuffer;
      return inUse.has(b) ? "in use" : isFree(b) ? "free" : "other";
    },
    take: (buffers) => {
      const list = [...buffers] as GpuPoolBuffer[];
      if (!list.every(isFree)) return false;
      for (const b of list) {
        const l = free.get(b[POOL_KEY]!)!;
        l.splice(l.indexOf(b), 1);
        p.numFreeBuffers--;
      }
      return true;
    },
    giveBack: (buffers) => {
      for (const b of buffers as Iterable<GpuPoolBuffer>) {
        free.get(b[POOL_KEY]!)!.push(b);
        p.numFreeBuffers++;
      }
    },
  };
}
