import * as tf from "@tensorflow/tfjs";
import { ConfigError } from "@sit/core";
import { describe, expect, it } from "vitest";
import { gelu } from "./gelu";
import { linear } from "./linear";
import { portableKernels } from "./portable";
import { listKernelOverrides, registerKernelOverride } from "./registry";

describe("kernel override registry", () => {
  it("routes a call to the override registered for the active backend only, until removed", () => {
    const calls: number[][] = [];
    const builtIn = listKernelOverrides(); // the wasm kernels this package registers on import
    const remove = registerKernelOverride("linear", tf.getBackend(), (x, w, b) => {
      calls.push(x.shape);
      return portableKernels.linear(x, w, b);
    });
    const removeOther = registerKernelOverride("gelu", "some-other-backend", () => {
      throw new Error("must not be called on this backend");
    });
    expect(listKernelOverrides()).toEqual(
      expect.arrayContaining([
        { name: "linear", backend: tf.getBackend() },
        { name: "gelu", backend: "some-other-backend" },
      ]),
    );
    const x = tf.ones([2, 3, 4]);
    const w = tf.ones([4, 5]);
    const y = linear(x, w);
    // the override sees the validated, flattened 2-D input
    expect(calls).toEqual([[6, 4]]);
    expect(y.shape).toEqual([2, 3, 5]);
    const g = gelu(x);
    remove();
    removeOther();
    linear(x, w).dispose();
    expect(calls.length).toBe(1);
    expect(listKernelOverrides()).toEqual(builtIn);
    tf.dispose([x, w, y, g]);
  });

  it("rejects unknown operations, duplicates and non-functions", () => {
    expect(() => registerKernelOverride("conv" as never, "cpu", (() => null) as never)).toThrow(
      ConfigError,
    );
    const remove = registerKernelOverride("gelu", "cpu", portableKernels.gelu);
    expect(() => registerKernelOverride("gelu", "cpu", portableKernels.gelu)).toThrow(
      /already has an override/,
    );
    remove();
    expect(() => registerKernelOverride("gelu", "", portableKernels.gelu)).toThrow(/backend/);
    expect(() => registerKernelOverride("gelu", "cpu", 3 as never)).toThrow(
      /impl: expected a function/,
    );
  });
});
