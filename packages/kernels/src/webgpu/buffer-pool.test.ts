import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { type TfjsBufferManager, installConstantTimePool, settleBufferPool } from "./buffer-pool";
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

  it("keeps tfjs's pool accounting with constant-time calls, buffers taken before included", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b = webgpuInternals(tf.backend());
    const pool = b.bufferManager as unknown as TfjsBufferManager;
    settleBufferPool();
    const usage = 0x80 | 0x04 | 0x08;
    const before = { ...pool };
    const x = pool.acquireBuffer(4 * 4099, usage);
    const y = pool.acquireBuffer(4 * 4099, usage);
    expect(pool.numBytesUsed - before.numBytesUsed).toBe(2 * 4 * 4099);
    expect(pool.numUsedBuffers - before.numUsedBuffers).toBe(2);
    pool.releaseBuffer(x);
    expect(pool.numFreeBuffers - before.numFreeBuffers).toBe(1);
    // The most recently freed buffer of that size and usage comes back first; not another size's.
    expect(pool.acquireBuffer(4 * 4099, usage)).toBe(x);
    const z = pool.acquireBuffer(4 * 4100, usage);
    expect(z).not.toBe(y);
    pool.releaseBuffer(z);
    // Released without reuse: destroyed, and no longer allocated.
    const allocated = pool.numBytesAllocated;
    pool.releaseBuffer(y, false);
    expect(pool.numBytesAllocated).toBe(allocated - 4 * 4099);
    expect(() => pool.releaseBuffer(y)).toThrow("Cannot find the buffer in buffer manager");
    pool.releaseBuffer(x);
    // tf.memory's GPU bytes are the pool's counters.
    expect((tf.memory() as { numBytesInGPU?: number }).numBytesInGPU).toBe(pool.numBytesUsed);
  });

  it("moves the buffers of a tfjs pool in use and free into its own lists", () => {
    const made: { size: number; usage: number; destroyed: boolean; destroy(): void }[] = [];
    const device = {
      createBuffer({ size, usage }: { size: number; usage: number }) {
        const buffer = {
          size,
          usage,
          destroyed: false,
          destroy() {
            buffer.destroyed = true;
          },
        };
        made.push(buffer);
        return buffer;
      },
    };
    const [a, c] = [
      device.createBuffer({ size: 64, usage: 8 }),
      device.createBuffer({ size: 64, usage: 8 }),
    ];
    // tfjs's BufferManager keeps its methods on the prototype, as this stand-in does.
    class StandIn {
      device = device;
      freeBuffers = new Map([["64_8", [a]]]);
      usedBuffers = new Map([["64_8", [c]]]);
      numUsedBuffers = 1;
      numFreeBuffers = 1;
      numBytesUsed = 64;
      numBytesAllocated = 128;
      acquireBuffer(): object {
        return {};
      }
      releaseBuffer(): void {}
      dispose(): void {
        for (const list of [...this.freeBuffers.values(), ...this.usedBuffers.values()])
          for (const buffer of list) buffer.destroy();
      }
    }
    // A pool whose calls someone wrapped is left alone (the wrapper would be lost).
    const wrapped = new StandIn();
    const probe = () => ({});
    wrapped.acquireBuffer = probe;
    installConstantTimePool(wrapped as unknown as TfjsBufferManager);
    expect(wrapped.acquireBuffer).toBe(probe);
    expect(wrapped.freeBuffers.get("64_8")).toEqual([a]);
    const fake = new StandIn();
    const pool = fake as unknown as TfjsBufferManager;
    installConstantTimePool(pool);
    // The buffer taken before the install can be released; then it is handed out after `a`.
    pool.releaseBuffer(c);
    expect(pool.acquireBuffer(64, 8)).toBe(c);
    expect(pool.acquireBuffer(64, 8)).toBe(a);
    expect(pool.acquireBuffer(64, 8)).not.toBe(a);
    expect(made).toHaveLength(3);
    expect([pool.numUsedBuffers, pool.numFreeBuffers, pool.numBytesUsed]).toEqual([3, 0, 192]);
    // tfjs's dispose destroys every buffer, in use or free; releases after it are ignored.
    pool.releaseBuffer(a);
    pool.dispose();
    expect(made.every((buffer) => buffer.destroyed)).toBe(true);
    expect(() => pool.releaseBuffer(c)).not.toThrow();
  });

  it("does nothing off webgpu", async () => {
    await tf.setBackend("cpu");
    expect(() => settleBufferPool()).not.toThrow();
  });
});
