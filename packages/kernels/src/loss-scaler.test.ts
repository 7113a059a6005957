import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { DynamicLossScaler, LOSS_SCALER_DEFAULTS } from "./loss-scaler";
import { useWebgpu } from "./webgpu/testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

/** Feed `overflow` flags to a scaler and record [scale, growthTracker] after each update. */
function trace(scaler: DynamicLossScaler, overflow: boolean[]): [number, number][] {
  return overflow.map((inf) => {
    scaler.update(inf);
    return [scaler.scale, scaler.growthTracker];
  });
}

describe("DynamicLossScaler (PyTorch GradScaler semantics)", () => {
  it("starts from PyTorch's defaults", () => {
    const s = new DynamicLossScaler();
    expect([s.scale, s.growthTracker]).toEqual([65536, 0]);
    expect(s.state()).toEqual({
      scale: 65536,
      growthTracker: 0,
      growthFactor: 2,
      backoffFactor: 0.5,
      growthInterval: 2000,
      initScale: 65536,
    });
    expect(LOSS_SCALER_DEFAULTS.growthInterval).toBe(2000);
  });

  it("halves on an overflow and resets the count; doubles after growthInterval clean steps", () => {
    // Hand-computed with torch._amp_update_scale_ (growth_interval 3 to keep it short).
    const s = new DynamicLossScaler({ initScale: 1024, growthInterval: 3 });
    const F = false;
    const T = true;
    expect(trace(s, [F, F, F, F, T, F, F, T, T, F, F, F])).toEqual([
      [1024, 1],
      [1024, 2],
      [2048, 0], // third clean step: ×2
      [2048, 1],
      [1024, 0], // overflow: ×0.5, count reset
      [1024, 1],
      [1024, 2],
      [512, 0], // an overflow one step before growth: no growth
      [256, 0],
      [256, 1],
      [256, 2],
      [512, 0],
    ]);
  });

  it("with the defaults, grows exactly at the 2000th clean step", () => {
    const s = new DynamicLossScaler();
    for (let i = 0; i < 1999; i++) s.update(false);
    expect([s.scale, s.growthTracker]).toEqual([65536, 1999]);
    s.update(false);
    expect([s.scale, s.growthTracker]).toEqual([131072, 0]);
    s.update(true);
    expect([s.scale, s.growthTracker]).toEqual([65536, 0]);
  });

  it("does not grow past f32's range (the count still resets)", () => {
    const s = new DynamicLossScaler({ initScale: 2 ** 127, growthInterval: 1 });
    s.update(false);
    expect([s.scale, s.growthTracker]).toEqual([2 ** 127, 0]);
  });

  it("step: skips apply and backs off on inf or NaN; applies grads / scale otherwise; no leak", async () => {
    await tf.setBackend("cpu");
    const s = new DynamicLossScaler({ initScale: 8, growthInterval: 2 });
    const applied: number[][] = [];
    const apply = (g: Record<string, tf.Tensor>) => applied.push(Array.from(g.w.dataSync()));
    const grads = (w: number[]) => ({ w: tf.tensor1d(w), b: tf.tensor1d([4]) });
    const g1 = grads([8, -16, 1e30]);
    expect(await s.step(g1, apply)).toBe(true);
    expect(applied).toEqual([[1, -2, Math.fround(1e30) / 8]]);
    expect(s.scale).toBe(8);
    const before = tf.memory().numTensors;
    const g2 = grads([1, Number.POSITIVE_INFINITY, 2]);
    const g3 = grads([Number.NaN, 1, 2]);
    expect(await s.step(g2, apply)).toBe(false);
    expect(await s.step(g3, apply)).toBe(false);
    expect(applied.length).toBe(1);
    expect(s.scale).toBe(2);
    expect(tf.memory().numTensors).toBe(before + 4); // g2 and g3 only: the caller's
    tf.dispose([...Object.values(g1), ...Object.values(g2), ...Object.values(g3)]);
  });

  it("a restored state continues bit-exactly", () => {
    const flags = Array.from({ length: 40 }, (_, i) => i % 7 === 3 || i % 11 === 0);
    const whole = new DynamicLossScaler({ growthInterval: 4 });
    const all = trace(whole, flags);
    const first = new DynamicLossScaler({ growthInterval: 4 });
    trace(first, flags.slice(0, 17));
    const saved = JSON.parse(JSON.stringify(first.state()));
    const resumed = new DynamicLossScaler();
    resumed.loadState(saved);
    expect(trace(resumed, flags.slice(17))).toEqual(all.slice(17));
  });

  it("rejects bad options and states, naming the field, value and expectation", () => {
    expect(() => new DynamicLossScaler({ growthFactor: 1 })).toThrow(
      "lossScaler growthFactor: expected a finite number above 1, got 1",
    );
    expect(() => new DynamicLossScaler({ backoffFactor: 2 })).toThrow(
      /lossScaler backoffFactor: expected a number between 0 and 1 \(exclusive\), got 2/,
    );
    expect(() => new DynamicLossScaler({ growthInterval: 0.5 })).toThrow(
      /lossScaler growthInterval: expected a positive integer, got 0.5/,
    );
    expect(() => new DynamicLossScaler({ initScale: 0 })).toThrow(/lossScaler initScale/);
    const s = new DynamicLossScaler();
    expect(() => s.loadState({ ...s.state(), growthTracker: -1 })).toThrow(
      /lossScaler growthTracker: expected a non-negative integer, got -1/,
    );
  });

  it("finds an inf gradient on webgpu too", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const s = new DynamicLossScaler({ initScale: 4 });
    // Many tensors, the inf in the last (more than a shader can bind at once).
    const g: Record<string, tf.Tensor> = {};
    for (let i = 0; i < 40; i++) g[`p${i}`] = tf.tensor1d([1, 2]);
    g.w = tf.tensor1d([1, Number.NEGATIVE_INFINITY]);
    let ran = false;
    expect(await s.step(g, () => (ran = true))).toBe(false);
    expect([ran, s.scale]).toEqual([false, 2]);
    const h = { w: tf.tensor1d([4, -8]) };
    const seen: number[] = [];
    expect(await s.step(h, (u) => seen.push(...u.w.dataSync()))).toBe(true);
    expect(seen).toEqual([2, -4]);
    tf.dispose([...Object.values(g), h.w]);
  });
});
