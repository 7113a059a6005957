import * as tf from "@tensorflow/tfjs";
import { webgpuInternals } from "./flat-buffers";

// tfjs's WebGPU buffer pool keeps freed buffers in one list per (size, usage) and hands back the
// most recently freed one. A training step frees its buffers in an order that is not the order it
// took them, so the next step gets the same sizes from a permuted list: the kernels see other
// buffers, and every dispatch encoded directly (encode.ts) whose bindings moved needs a new bind
// group (≈ 200 of the SiT step's ≈ 350 dispatches, in every step, measured on lavapipe). Putting
// every free list in one fixed order at the same point of each step makes the steps take the
// same buffers, so their bind groups come from the cache.

const order = new WeakMap<object, number>();
let seen = 0;

function rank(buffer: object): number {
  let r = order.get(buffer);
  if (r === undefined) {
    r = seen++;
    order.set(buffer, r);
  }
  return r;
}

/**
 * On webgpu, sort each of tfjs's free-buffer lists by when this function first saw the buffer,
 * the earliest handed out first; elsewhere nothing. Call it once per training step, at the same
 * point of every step (the recipes do, before the optimiser's update).
 */
export function settleBufferPool(): void {
  if (tf.getBackend() !== "webgpu") return;
  const b = webgpuInternals(tf.backend());
  const pool = b.bufferManager as { freeBuffers?: Map<string, object[]> };
  if (!(pool.freeBuffers instanceof Map)) return;
  for (const list of pool.freeBuffers.values()) {
    for (const buffer of list) rank(buffer);
    // acquireBuffer pops from the end: the earliest seen goes last.
    if (list.length > 1) list.sort((x, y) => rank(y) - rank(x));
  }
}
