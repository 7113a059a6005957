import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { portableGelu } from "../gelu";
import { webgpuBiasGelu, webgpuColumnSum, webgpuGelu } from "./gelu";
import { countLaunches, fill, onCpu, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

// GELU(x) = x·Φ(x) and GELU′(x) = Φ(x) + x·φ(x) in float64 with Python's math.erf.
const XS = [-8, -5, -3.3, -2, -1.25, -0.5, -0.1, 0, 0.07, 0.5, 1, 1.7, 2.5, 4, 6.5];
const GELU = [
  -4.884981308e-15, -1.433257859e-6, -0.00159529967, -0.0455002639, -0.1320622171, -0.1542687694,
  -0.04601721627, 0.0, 0.03695322191, 0.3457312306, 0.8413447461, 1.624238713, 2.484475837,
  3.999873315, 6.5,
];
const GELU_GRAD = [
  -3.9807546e-14, -7.146946002e-6, -0.005201053356, -0.08523180108, -0.1226615831, 0.1325048753,
  0.420476908, 0.5, 0.555760795, 0.8674951247, 1.083315471, 1.115317969, 1.037611086, 1.00050365,
  1.000000002,
];

describe("webgpu GELU kernels", () => {
  it("computes GELU and its derivative to float32 accuracy, tails included (WGSL erfc)", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const x = tf.tensor1d(XS);
    const [y, g] = [webgpuGelu(x), tf.grad((t: tf.Tensor) => webgpuGelu(t).sum())(x)];
    const [yv, gv] = [await y.data(), await g.data()];
    // Element-wise relative error (not max-norm) to x = −5 (GELU ≈ −1.4e-6): the negative tail must be
    // right too. Further out only absolutely (lavapipe's exp loses relative accuracy near 1e-15).
    for (let i = 0; i < XS.length; i++) {
      expect(Math.abs(yv[i] - GELU[i]), `gelu(${XS[i]})`).toBeLessThanOrEqual(
        1e-6 * Math.abs(GELU[i]) + 1e-13,
      );
      expect(Math.abs(gv[i] - GELU_GRAD[i]), `gelu'(${XS[i]})`).toBeLessThanOrEqual(
        1e-6 * Math.abs(GELU_GRAD[i]) + 1e-13,
      );
    }
    tf.dispose([x, y, g]);
  });

  it("matches the portable gelu(x + b) and its gradients on the cpu backend", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const make = () => [fill([3, 7, 37], 1, 2), fill([37], 2), fill([3, 7, 37], 3)];
    const loss = (f: (x: tf.Tensor, b: tf.Tensor) => tf.Tensor, w: tf.Tensor) =>
      tf.grads((x: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(x, b), w)));
    const portable = (x: tf.Tensor, b: tf.Tensor) => portableGelu(tf.add(x, b));
    const reference = await onCpu(() => {
      const [x, b, w] = make();
      return [portable(x, b), ...loss(portable, w)([x, b]), tf.sum(tf.reshape(w, [-1, 37]), 0)];
    });
    const [x, b, w] = make();
    const fused = (xi: tf.Tensor, bi: tf.Tensor) => webgpuBiasGelu(xi, bi as tf.Tensor1D);
    const got = [
      fused(x, b),
      ...loss(fused, w)([x, b]),
      webgpuColumnSum(tf.reshape(w, [-1, 37]) as tf.Tensor2D),
    ];
    for (const [i, label] of ["y", "dx", "dbias", "columnSum"].entries())
      expectClose(await got[i].data(), reference[i], 1e-4, label);
    tf.dispose([x, b, w, ...got]);
  });

  it("takes one dispatch forward, three backward (dh + bias sum), and leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const [x, b] = [fill([65, 96], 4), fill([96], 5)];
    expect(await countLaunches(() => webgpuBiasGelu(x, b as tf.Tensor1D))).toEqual({
      dispatches: 1,
      kernels: ["SitBiasGelu"],
    });
    const f = tf.grads((xi: tf.Tensor, bi: tf.Tensor) => webgpuBiasGelu(xi, bi as tf.Tensor1D));
    const dy = fill([65, 96], 6);
    const both = await countLaunches(() => f([x, b], dy));
    expect(both.kernels.filter((k) => k.startsWith("Sit"))).toEqual([
      "SitBiasGelu",
      "SitBiasGeluGrad",
    ]);
    expect(both.dispatches).toBe(1 + 3);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(f([x, b]));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, b, dy]);
  });
});
