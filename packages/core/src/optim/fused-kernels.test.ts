import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors";
import { AdamW } from "./adamw";
import {
  type FlatAdamWLayout,
  type FlatAdamWStepArgs,
  flatAdamWKernel,
  flatEmaKernel,
  registerFlatAdamWKernel,
  registerFlatEmaKernel,
} from "./fused-kernels";

describe("fused-kernel hooks", () => {
  it("register, refuse a second registration, and unregister", () => {
    const ema = (t: tf.Tensor[]) => t;
    const remove = registerFlatEmaKernel("test-backend", ema);
    expect(flatEmaKernel("test-backend")).toBe(ema);
    expect(() => registerFlatEmaKernel("test-backend", ema)).toThrow(ConfigError);
    remove();
    expect(flatEmaKernel("test-backend")).toBeUndefined();
    expect(() => registerFlatAdamWKernel("", { prepare: () => ({}) as never })).toThrow(/backend/);
    expect(() => registerFlatAdamWKernel("x", {} as never)).toThrow(/kernel/);
  });

  it("AdamW's device mode hands a registered kernel one flat layout over all groups", () => {
    // A recording stand-in (on cpu): checks the plumbing, not the arithmetic.
    const layouts: FlatAdamWLayout[] = [];
    const calls: FlatAdamWStepArgs[] = [];
    let disposed = 0;
    const remove = registerFlatAdamWKernel("cpu", {
      prepare(layout) {
        layouts.push(layout);
        return {
          step(args) {
            calls.push(args);
            return args.params.map((p) => tf.add(p, 1));
          },
          dispose: () => {
            disposed++;
          },
        };
      },
    });
    try {
      const w = tf.variable(tf.zeros([2, 3]));
      const b = tf.variable(tf.zeros([3]));
      const opt = new AdamW(
        [
          ["w", w],
          ["b", b],
        ],
        { lr: 0.1, clipPerTensor: 3, implementation: "device" },
      );
      expect(layouts).toHaveLength(1);
      expect(Array.from(layouts[0].offsets)).toEqual([0, 6, 9]);
      expect(Array.from(layouts[0].groupOf)).toEqual([0, 1]);
      const grads = { w: tf.ones([2, 3]), b: tf.ones([3]) };
      const before = tf.memory().numTensors;
      opt.step(grads);
      opt.step(grads);
      expect(tf.memory().numTensors).toBe(before);
      expect(calls.map((c) => c.stale)).toEqual([
        [true, true],
        [false, false],
      ]);
      expect(calls[1].groups).toEqual([
        { lr: 0.1, weightDecay: 0.04 },
        { lr: 0.1, weightDecay: 0 },
      ]);
      expect(calls[1].step).toBe(2);
      expect(calls[1].clipPerTensor).toBe(3);
      expect(Array.from(w.dataSync())).toEqual([2, 2, 2, 2, 2, 2]);
      // Unregistered: the next step moves the moments to the tfjs-op path.
      remove();
      expect(flatAdamWKernel("cpu")).toBeUndefined();
      opt.step(grads);
      expect(disposed).toBe(1);
      expect(calls).toHaveLength(2);
      const state = opt.state();
      expect(state.tensors["exp_avg.b"].shape).toEqual([3]);
      tf.dispose([w, b, ...Object.values(grads), ...Object.values(state.tensors)]);
      opt.dispose();
    } finally {
      remove();
    }
  });
});
