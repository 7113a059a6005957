import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { portableLayerNorm } from "../layer-norm";
import { webgpuLayerNorm } from "./layer-norm";
import { countLaunches, fill, onCpu, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

function lossOf(ln: typeof portableLayerNorm, w: tf.Tensor, eps: number) {
  return (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(ln(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, eps), w));
}

describe("webgpu LayerNorm kernel", () => {
  // Rows that are not a multiple of the 32-row blocks; widths below, at and above the workgroup.
  for (const [m, d, offset] of [
    [37, 48, 0],
    [5, 192, 3],
    [70, 300, -2],
    [301, 20, 1], // 10 blocks over the 4 lanes of the final column sum
  ] as const) {
    it(`matches the portable forward and gradients on the cpu backend (M=${m}, D=${d})`, async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const make = () => [
        tf.add(fill([m, d], 1, 2), offset), // a large mean tests the one-pass variance
        fill([d], 2),
        fill([d], 3),
        fill([m, d], 4),
      ];
      const reference = await onCpu(() => {
        const [x, g, b, w] = make();
        const y = portableLayerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5);
        return [y, ...tf.grads(lossOf(portableLayerNorm, w, 1e-5))([x, g, b])];
      });
      const [x, g, b, w] = make();
      const y = webgpuLayerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5);
      const grads = tf.grads(lossOf(webgpuLayerNorm, w, 1e-5))([x, g, b]);
      const labels = ["y", "dx", "dgamma", "dbeta"];
      for (const [i, t] of [y, ...grads].entries())
        expectClose(await t.data(), reference[i], 1e-4, labels[i]);
      tf.dispose([x, g, b, w, y, ...grads]);
    });
  }

  it("handles more than 65,535 rows (tfjs folds the dispatch into a square)", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const make = () => [fill([65600, 2], 9), fill([2], 10), fill([2], 11)];
    const [reference] = await onCpu(() => {
      const [x, g, b] = make();
      return [portableLayerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3)];
    });
    const [x, g, b] = make();
    const y = webgpuLayerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
    expectClose(await y.data(), reference, 1e-4, "y");
    tf.dispose([x, g, b, y]);
  });

  it("runs forward + backward in 1 + 4 dispatches and leaks no tensors", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const [x, g, b, w] = [fill([65, 192], 5), fill([192], 6), fill([192], 7), fill([65, 192], 8)];
    const f = tf.grads(lossOf(webgpuLayerNorm, w, 1e-6));
    const forward = await countLaunches(() =>
      webgpuLayerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-6),
    );
    expect(forward).toEqual({ dispatches: 1, kernels: ["SitLayerNorm"] });
    const both = await countLaunches(() => tf.tidy(() => f([x, g, b])));
    // SitLayerNorm + its gradient kernel, plus the loss's own Mul/Sum and their gradients.
    expect(both.kernels.filter((k) => k.startsWith("SitLayerNorm"))).toEqual([
      "SitLayerNorm",
      "SitLayerNormGrad",
    ]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(f([x, g, b]));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, g, b, w]);
  });
});
