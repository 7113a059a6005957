import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { viewOf } from "./encode";
import { markWritten, rawDispatchCount, webgpuInternals } from "./flat-buffers";
import { type StridedSum, encodeStridedSums } from "./strided-sums";
import { fill, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

/** The sum on the host, in f64: out[i] = Σ_r src[first + r·stride + i]. */
function hostSum(src: Float32Array, first: number, stride: number, count: number, len: number) {
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    let s = 0;
    for (let r = 0; r < count; r++) s += src[first + r * stride + i];
    out[i] = s;
  }
  return out;
}

describe("strided sums (the finishing sums of split reductions)", () => {
  it("sums jobs of every stride, count and length from unaligned starts, in one dispatch", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b = webgpuInternals(tf.backend());
    const src = fill([40_000], 3);
    const host = (await src.data()) as Float32Array;
    // [first, stride, count, len]: split-K slices (stride = len), LayerNorm partials (dγ and dβ
    // interleaved: the second starts d floats in, not aligned), one row, a count of 7 (lanes
    // uneven), more than 64 columns (several workgroups), a single column.
    const jobs: [number, number, number, number][] = [
      [0, 130, 5, 130],
      [704, 2 * 48, 9, 48],
      [704 + 48, 2 * 48, 9, 48],
      [1664, 0, 1, 200],
      [2048, 301, 7, 300],
      [5120, 1, 33, 1],
    ];
    const outs = jobs.map(([, , , len]) => tf.zeros([len]));
    const sums: StridedSum[] = jobs.map(([first, stride, count, len], j) => ({
      source: viewOf(b, src, first, (count - 1) * stride + len),
      stride,
      count,
      out: viewOf(b, outs[j]),
    }));
    const raw0 = rawDispatchCount();
    encodeStridedSums(b, sums);
    expect(rawDispatchCount() - raw0).toBe(1);
    for (const [j, [first, stride, count, len]] of jobs.entries()) {
      markWritten(b, outs[j]);
      const want = hostSum(host, first, stride, count, len);
      expectClose(await outs[j].data(), want, 1e-5, `job ${j}`, 1e-6);
    }
    tf.dispose([src, ...outs]);
  });

  it("takes more dispatches past the device's bindings and across source buffers", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b = webgpuInternals(tf.backend());
    const perDispatch = b.device.limits.maxStorageBuffersPerShaderStage - 1;
    const srcs = [fill([4096], 5), fill([4096], 6)];
    const hosts = (await Promise.all(srcs.map((s) => s.data()))) as Float32Array[];
    // perDispatch + 1 jobs on the first source, then 2 on the second: 3 dispatches.
    const specs = Array.from({ length: perDispatch + 3 }, (_, j) => ({
      s: j <= perDispatch ? 0 : 1,
      first: (j % 8) * 64,
      count: 1 + (j % 5),
    }));
    const outs = specs.map(() => tf.zeros([70]));
    const raw0 = rawDispatchCount();
    encodeStridedSums(
      b,
      specs.map(({ s, first, count }, j) => ({
        source: viewOf(b, srcs[s], first, (count - 1) * 100 + 70),
        stride: 100,
        count,
        out: viewOf(b, outs[j]),
      })),
    );
    expect(rawDispatchCount() - raw0).toBe(3);
    for (const [j, { s, first, count }] of specs.entries()) {
      markWritten(b, outs[j]);
      const want = hostSum(hosts[s], first, 100, count, 70);
      expectClose(await outs[j].data(), want, 1e-5, `job ${j}`, 1e-6);
    }
    tf.dispose([...srcs, ...outs]);
  });
});
