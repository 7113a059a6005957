import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { GradientAccumulator } from "./accumulate";

describe("GradientAccumulator", () => {
  it("the mean over k micro-batches equals the full-batch gradient of a mean loss", () => {
    const w = tf.variable(tf.tensor2d([[0.5], [-1], [2]]), true, "acc_w");
    const x = tf.tensor2d([
      [1, 2, 3],
      [0, -1, 1],
      [2, 2, -2],
      [1, 0, 0],
    ]);
    const y = tf.tensor2d([[1], [0], [3], [-1]]);
    const loss = (xs: tf.Tensor, ys: tf.Tensor) => () =>
      tf.losses.meanSquaredError(ys, tf.matMul(xs, w)) as tf.Scalar;
    const full = tf.variableGrads(loss(x, y), [w]);
    const acc = new GradientAccumulator(2);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) {
      const [xs, ys] = [x.slice(2 * i, 2), y.slice(2 * i, 2)];
      const part = tf.variableGrads(loss(xs, ys), [w]);
      const done = acc.add(part.grads);
      expect(done).toBe(i === 1);
      tf.dispose([xs, ys, part.value, ...Object.values(part.grads)]);
    }
    expect(acc.count).toBe(2);
    const mean = acc.result();
    expectClose(mean.acc_w, full.grads.acc_w, 1e-6, "mean gradient");
    expect(acc.count).toBe(0);
    tf.dispose(Object.values(mean));
    expect(tf.memory().numTensors, "leaked tensors").toBe(before);
    tf.dispose([w, x, y, full.value, ...Object.values(full.grads)]);
  });

  it("sums when asked, refuses mismatched names and over-filling", () => {
    const acc = new GradientAccumulator(2, { average: false });
    const a = tf.tensor1d([1, 2]);
    acc.add({ a });
    expect(() => acc.add({ b: a })).toThrow(/same parameters/);
    expect(() => acc.add({ a: tf.ones([3]) })).toThrow(/expected shape \[2\]/);
    acc.add({ a });
    expect(() => acc.add({ a })).toThrow(/call result\(\) first/);
    const s = acc.result();
    expect(Array.from(s.a.dataSync())).toEqual([2, 4]);
    expect(() => acc.result()).toThrow(/no micro-batch/);
    expect(() => new GradientAccumulator(0)).toThrow(/steps/);
    tf.dispose([a, s.a]);
  });
});
