import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { useWebgpu } from "../../packages/testing/src/backends";
import {
  type RecordedCall,
  compareWebgpuCalls,
  countWebgpuCalls,
  recordWebgpuCalls,
} from "./webgpu-calls";

// Stand-ins for WebGPU objects: compareWebgpuCalls looks at identity, sizes and bytes only.
const buffer = (usage = 128) => ({ size: 64, usage });
const [g1, g2, p1] = [{}, {}, {}];
const out = buffer();
const recording = (bytes: number[], group: object): RecordedCall[] => [
  { op: "encoder", id: 0 },
  { op: "write", buffer: out, offset: 0, bytes: new Uint8Array(bytes) },
  { op: "pass", encoder: 0, id: 1 },
  { op: "pipeline", pass: 1, pipeline: p1 },
  { op: "group", pass: 1, index: 0, group },
  { op: "dispatch", pass: 1, x: 4, y: 1, z: 1 },
  { op: "end", pass: 1 },
  { op: "finish", encoder: 0, id: 2 },
  { op: "submit", commandBuffers: [2] },
];

describe("compareWebgpuCalls", () => {
  it("finds two recordings of the same calls the same, with no varying write", () => {
    expect(compareWebgpuCalls(recording([1, 2], g1), recording([1, 2], g1))).toEqual({
      sameCalls: true,
      differingCalls: 0,
      varyingWrites: [],
      varyingBytes: 0,
    });
  });

  it("lists the writes whose bytes differ as the work's inputs, the calls still the same", () => {
    const c = compareWebgpuCalls(recording([1, 2, 3], g1), recording([1, 9, 3], g1));
    expect(c).toEqual({ sameCalls: true, differingCalls: 0, varyingWrites: [0], varyingBytes: 3 });
  });

  it("counts a call made on another object, and names the first", () => {
    const c = compareWebgpuCalls(recording([1], g1), recording([1], g2));
    expect(c.sameCalls).toBe(false);
    expect(c.differingCalls).toBe(1);
    expect(c.firstDifference).toEqual({ index: 4, why: "group on other objects or sizes" });
  });

  it("stops where the kinds of the calls part", () => {
    const a = recording([1], g1);
    const b = [...a.slice(0, 5), ...a.slice(6)];
    const c = compareWebgpuCalls(a, b);
    expect(c.sameCalls).toBe(false);
    expect(c.firstDifference).toEqual({ index: 5, why: "dispatch against end" });
  });

  it("leaves out which staging buffer a read copies into", () => {
    const read = (staging: { size: number; usage: number }): RecordedCall[] => [
      { op: "copy", encoder: 0, src: out, srcOffset: 0, dst: staging, dstOffset: 0, size: 64 },
    ];
    expect(compareWebgpuCalls(read(buffer(1 | 8)), read(buffer(1 | 8))).sameCalls).toBe(true);
    expect(compareWebgpuCalls(read(buffer(4 | 8)), read(buffer(4 | 8))).sameCalls).toBe(false);
  });
});

describe("countWebgpuCalls", () => {
  it("counts the calls by kind, and the bytes written", () => {
    const calls = recording([1, 2, 3], g1);
    const made = {
      calls,
      groupBuffers: new Map([[g1, [out]]]),
      destroyed: new Set<typeof out>(),
      unreplayable: null,
    };
    expect(countWebgpuCalls(made)).toEqual({
      writeBytes: 3,
      bindGroupsMade: 1,
      encoder: 1,
      write: 1,
      pass: 1,
      pipeline: 1,
      group: 1,
      dispatch: 1,
      end: 1,
      finish: 1,
      submit: 1,
    });
  });
});

interface Gpu {
  device: {
    queue: {
      writeBuffer(b: object, o: number, d: ArrayBufferView): void;
      submit(c: object[]): void;
    };
    createCommandEncoder(): {
      copyBufferToBuffer(...a: unknown[]): void;
      finish(): object;
    };
    createBuffer(d: { size: number; usage: number }): {
      mapAsync(mode: number): Promise<void>;
      getMappedRange(): ArrayBuffer;
      destroy(): void;
    };
  };
  tensorMap: { get(id: object): { resource: object } };
}

/** A buffer's first `n` floats, read through a staging buffer of its own. */
async function readFloats(gpu: Gpu, source: object, n: number): Promise<number[]> {
  const staging = gpu.device.createBuffer({ size: n * 4, usage: 1 | 8 }); // MAP_READ | COPY_DST
  const encoder = gpu.device.createCommandEncoder();
  encoder.copyBufferToBuffer(source, 0, staging, 0, n * 4);
  gpu.device.queue.submit([encoder.finish()]);
  await staging.mapAsync(1);
  const values = [...new Float32Array(staging.getMappedRange().slice(0))];
  staging.destroy();
  return values;
}

describe("recordWebgpuCalls on webgpu", () => {
  it("replays the recorded work: an output overwritten since is computed again", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const gpu = tf.backend() as unknown as Gpu;
    const recorder = recordWebgpuCalls(gpu);
    // Above tfjs's size for running an op on the CPU (its inputs' values are on the host).
    const n = 1024;
    const a = tf.range(0, n);
    const b = tf.mul(a, 10);
    const expected = Array.from({ length: n }, (_, i) => 11 * i);
    await Promise.all([a.data(), b.data()]);
    recorder.start();
    const y = tf.add(a, b);
    const first = await y.data();
    const recorded = recorder.stop();
    expect([...first]).toEqual(expected);
    expect(countWebgpuCalls(recorded).dispatch).toBeGreaterThanOrEqual(1);
    const resource = gpu.tensorMap.get(y.dataId).resource;
    gpu.device.queue.writeBuffer(resource, 0, new Float32Array(n));
    expect(await readFloats(gpu, resource, n)).toEqual(new Array(n).fill(0));
    recorder.replay(recorded.calls);
    expect(await readFloats(gpu, resource, n)).toEqual(expected);
    tf.dispose([a, b, y]);
  });

  it("records nothing outside a recording, and refuses to open two", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const gpu = tf.backend() as unknown as Gpu;
    const recorder = recordWebgpuCalls(gpu);
    const x = tf.tensor1d([1, 2]);
    const negated = tf.neg(x);
    await negated.data();
    recorder.start();
    expect(() => recorder.start()).toThrow(/open already/);
    expect(recorder.stop().calls).toEqual([]);
    expect(() => recorder.stop()).toThrow(/no recording/);
    tf.dispose([x, negated]);
  });
});
