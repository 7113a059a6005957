import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { settleBufferPool } from "./buffer-pool";
import { webgpuInternals } from "./flat-buffers";
import { useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

describe("settleBufferPool", () => {
  it("hands out freed buffers of one size in a fixed order, whatever order they were freed in", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b = webgpuInternals(tf.backend());
    const pool = b.bufferManager as unknown as {
      acquireBuffer(size: number, usage: number): object;
      releaseBuffer(buffer: object): void;
    };
    // A size no other tensor has, so the free list holds only these.
    const size = 4 * 1237;
    const usage = 0x80 | 0x04 | 0x08;
    const take = (n: number) => Array.from({ length: n }, () => pool.acquireBuffer(size, usage));
    const first = take(3);
    settleBufferPool();
    for (const buffer of first) pool.releaseBuffer(buffer);
    settleBufferPool();
    const again = take(3);
    // Freed [0, 1, 2]: tfjs alone would hand out 2 first; settled, 0.
    expect(again).toEqual(first);
    // Freed in another order, the same buffers come back in the same order.
    for (const buffer of [again[2], again[0], again[1]]) pool.releaseBuffer(buffer);
    settleBufferPool();
    expect(take(3)).toEqual(first);
    for (const buffer of first) pool.releaseBuffer(buffer);
  });

  it("does nothing off webgpu", async () => {
    await tf.setBackend("cpu");
    expect(() => settleBufferPool()).not.toThrow();
  });
});
