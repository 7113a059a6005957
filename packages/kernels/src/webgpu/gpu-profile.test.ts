import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { rawDispatchCount, webgpuInternals } from "./flat-buffers";
import { PLAIN_GEMM, webgpuGemm } from "./gemm";
import { gemmKey } from "./gemm-wgsl";
import { type GpuProfile, startGpuProfile, stopGpuProfile } from "./gpu-profile";
import { programLabel, summariseTimestamps } from "./gpu-profile-summary";
import { fill, onCpu, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

describe("summariseTimestamps", () => {
  it("groups by key and by key and shape, leaves reversed or unwritten pairs out, and finds the timer granularity", () => {
    const wg: [number, number, number][] = [
      [1, 1, 1],
      [2, 1, 1],
      [1, 1, 1],
      [4, 2, 1],
      [1, 1, 1],
      [3, 1, 1],
    ];
    // ns: a 3000, b 1000, a 5000, c end < begin, d never written, a (other shape) 2000.
    const stamps = BigInt64Array.from([
      1_000_000n,
      1_003_000n,
      1_004_000n,
      1_005_000n,
      1_006_000n,
      1_011_000n,
      1_020_000n,
      1_012_000n,
      0n,
      0n,
      1_030_000n,
      1_032_000n,
    ]);
    const s = summariseTimestamps(["a", "b", "a", "c", "d", "a"], wg, stamps);
    expect(s.dispatches).toBe(6);
    expect(s.invalid).toBe(2);
    expect(s.sumMs).toBeCloseTo(0.011, 12);
    expect(s.byKey.map((g) => [g.key, g.count, g.totalMs, g.workgroups])).toEqual([
      ["a", 3, 0.01, ["1×1×1", "3×1×1"]],
      ["b", 1, 0.001, ["2×1×1"]],
    ]);
    expect(s.byKey[0].meanUs).toBeCloseTo(10 / 3, 12);
    expect(s.byKey[0].share).toBeCloseTo(10 / 11, 12);
    expect(s.byShape.map((g) => [g.key, g.workgroups, g.count, g.totalMs, g.meanUs])).toEqual([
      ["a", ["1×1×1"], 2, 0.008, 4],
      ["a", ["3×1×1"], 1, 0.002, 2],
      ["b", ["2×1×1"], 1, 0.001, 1],
    ]);
    expect(s.times[3].ms).toBeNaN();
    expect(s.times[4].ms).toBeNaN();
    expect(s.times[1]).toEqual({ key: "b", workgroups: [2, 1, 1], ms: 0.001 });
    // All stamps are multiples of 1000 = 2³·125: the largest power of two dividing them is 8.
    expect(s.granularityNs).toBe(8);
    expect(() => summariseTimestamps(["a"], [[1, 1, 1]], new BigInt64Array(3))).toThrow(
      /expected 2 timestamps \(2 per dispatch\), got 3/,
    );
  });
});

describe("programLabel", () => {
  it("names tfjs's program classes, and this package's programs by their own shader key", () => {
    class BinaryOpProgram {}
    expect(programLabel(new BinaryOpProgram() as never)).toBe("tfjs:BinaryOpProgram");
    // Keys as tfjs's makeShaderKey leaves them (seen in a SiT step).
    expect(
      programLabel({
        shaderKey:
          "sitBlockColumnSums_2_3_64,1,12,2,3float32,float32,float32DY,X;false_falseflatDispatch",
      }),
    ).toBe("tfjs:sitBlockColumnSums_2_3");
    expect(
      programLabel({
        shaderKey:
          "sitLayerNorm_64,1,12,1,1,2float32,float32,float32,float32X,Gamma,Beta;;true_false_falseflatDispatch",
      }),
    ).toBe("tfjs:sitLayerNorm");
    expect(programLabel({ shaderKey: "plain" })).toBe("tfjs:plain");
    expect(programLabel({})).toBe("tfjs:program");
  });
});

describe("webgpu GPU profile", () => {
  it("times each GEMM dispatch in its own pass without changing results or leaking", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // A bias keeps each product in one dispatch (no split over K). 256³ is 8× the work of 128³.
    const sizes = [128, 256];
    const inputs = sizes.map((n, i) => [
      fill([n, n], 10 + i),
      fill([n, n], 20 + i),
      fill([n], 30 + i),
    ]);
    const reference = await onCpu(() =>
      sizes.map((n, i) => {
        const [a, b, bias] = [fill([n, n], 10 + i), fill([n, n], 20 + i), fill([n], 30 + i)];
        return tf.add(tf.matMul(a, b), bias);
      }),
    );
    const gemm = (i: number) =>
      webgpuGemm(inputs[i][0] as tf.Tensor2D, inputs[i][1] as tf.Tensor2D, {
        bias: inputs[i][2] as tf.Tensor1D,
      });
    // Compile both shaders' pipelines and touch every buffer once before timing.
    const warm = [gemm(0), gemm(1)];
    await Promise.all(warm.map((t) => t.data()));
    tf.dispose(warm);
    const tensors0 = tf.memory().numTensors;

    const b = webgpuInternals(tf.backend());
    const key = gemmKey({ ...PLAIN_GEMM, bias: true });
    const reps = 3;
    const profiles: GpuProfile[] = [];
    const outs: tf.Tensor[] = [];
    for (const i of [0, 1]) {
      const raw0 = rawDispatchCount();
      startGpuProfile();
      for (let r = 0; r < reps; r++) outs.push(gemm(i));
      // A tfjs program between the direct dispatches: timed too, in a pass of its own.
      const sum = tf.add(outs[outs.length - 1], outs[outs.length - 2]);
      outs.push(sum);
      const p = await stopGpuProfile();
      expect(rawDispatchCount() - raw0).toBe(reps);
      profiles.push(p);
    }
    expect(b.computePassEncoder).toBeNull();
    const results = await Promise.all(outs.map((t) => t.data()));
    for (const i of [0, 1]) {
      for (let r = 0; r < reps; r++) expectClose(results[i * (reps + 1) + r], reference[i], 1e-4);
      const last = results[i * (reps + 1) + reps];
      expectClose(
        last,
        reference[i].map((x) => 2 * x),
        2e-4,
      );
    }
    tf.dispose(outs);
    tf.dispose(inputs.flat());
    expect(tf.memory().numTensors).toBe(tensors0 - 6);

    const timing = b.device as unknown as { features: { has(f: string): boolean } };
    if (!timing.features.has("timestamp-query")) {
      for (const p of profiles) {
        expect(p.available).toBe(false);
        expect(p.reason).toMatch(/timestamp-query/);
        expect(p.dispatches).toBe(0);
      }
      console.warn("[skip] GPU profile timing: the device lacks timestamp-query");
      return;
    }
    for (const p of profiles) {
      expect(p.available).toBe(true);
      expect(p.direct).toBe(reps);
      expect(p.tfjsPrograms).toBe(1);
      expect(p.dispatches).toBe(reps + 1);
      expect(p.dropped).toBe(0);
      expect(p.untimed).toBe(0);
      expect(p.invalid).toBe(0);
      expect(p.times.map((t) => t.key)).toEqual([key, key, key, expect.stringMatching(/^tfjs:/)]);
      for (const t of p.times) expect(t.ms).toBeGreaterThan(0);
      const g = p.byKey.find((x) => x.key === key);
      expect(g?.count).toBe(reps);
      expect(p.byKey.reduce((s, x) => s + x.totalMs, 0)).toBeCloseTo(p.sumMs, 9);
      expect(p.byKey.reduce((s, x) => s + x.share, 0)).toBeCloseTo(1, 9);
    }
    const [w128, w256] = profiles.map((p) => p.times[0].workgroups);
    expect(w256[0] * w256[1]).toBe(4 * w128[0] * w128[1]);
    // 8× the multiply-adds: the larger product takes longer (by well over 2× on any device). The
    // fastest of each product's repetitions: on a CPU driver (lavapipe) a busy machine can stall
    // one dispatch for tens of ms, which only ever lengthens it.
    const fastest = profiles.map((p) =>
      Math.min(...p.times.filter((t) => t.key === key).map((t) => t.ms)),
    );
    expect(fastest[1], `fastest 256³ ${fastest[1]} ms vs 128³ ${fastest[0]} ms`).toBeGreaterThan(
      2 * fastest[0],
    );
  });

  it("rejects a stop without a start and a second start", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    await expect(stopGpuProfile()).rejects.toThrow(/no profile is running/);
    startGpuProfile({ capacity: 1 });
    expect(() => startGpuProfile()).toThrow(/already running/);
    // Past the capacity of 1, the second dispatch runs untimed and is counted as dropped. (64 × 64:
    // tfjs runs ops on inputs under 1000 elements on the CPU.)
    const a = fill([64, 64], 1);
    const y = tf.tidy(() => tf.add(tf.add(a, a), a));
    const p = await stopGpuProfile();
    const want = (await onCpu(() => [tf.mul(fill([64, 64], 1), 3)]))[0];
    expectClose(await y.data(), want, 1e-6);
    if (p.available) {
      expect(p.dispatches).toBe(1);
      expect(p.dropped).toBe(1);
    }
    tf.dispose([a, y]);
    expect(() => startGpuProfile({ capacity: 0 })).toThrow(
      /capacity: expected a positive integer, got 0/,
    );
  });
});
