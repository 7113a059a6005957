import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors";
import { clipGradientsGlobalNorm, clipGradientsPerTensor } from "./clip";

describe("gradient clipping", () => {
  it("per tensor: only tensors above the threshold are scaled, by c/(‖g‖+1e-6)", () => {
    const grads = { a: tf.tensor1d([3, 4]), b: tf.tensor1d([0.3, 0.4]) };
    const out = clipGradientsPerTensor(grads, 1);
    expectClose(out.a, [3 / (5 + 1e-6), 4 / (5 + 1e-6)], 1e-6, "a");
    expectClose(out.b, [0.3, 0.4], 1e-7, "b");
    tf.dispose([...Object.values(grads), ...Object.values(out)]);
  });

  it("global norm: one factor for all tensors, and the norm before clipping", () => {
    const grads = { a: tf.tensor1d([3, 4]), b: tf.tensor2d([[12]]) };
    const { grads: out, totalNorm } = clipGradientsGlobalNorm(grads, 2);
    expect(totalNorm.dataSync()[0]).toBeCloseTo(13, 5);
    const f = 2 / (13 + 1e-6);
    expectClose(out.a, [3 * f, 4 * f], 1e-6, "a");
    expectClose(out.b, [12 * f], 1e-6, "b");
    const { grads: same, totalNorm: n2 } = clipGradientsGlobalNorm(grads, 100);
    expectClose(same.a, [3, 4], 0, "unclipped");
    tf.dispose([
      ...Object.values(grads),
      ...Object.values(out),
      ...Object.values(same),
      totalNorm,
      n2,
    ]);
  });

  it("rejects a non-positive or non-finite threshold", () => {
    expect(() => clipGradientsPerTensor({}, 0)).toThrow(ConfigError);
    expect(() => clipGradientsGlobalNorm({}, Number.NaN)).toThrow(
      /maxNorm: expected a finite number/,
    );
  });
});
