import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { layerNorm } from "../layer-norm";
import { linear, portableLinear } from "../linear";
import { listKernelOverrides } from "../registry";
import { webgpuLinear } from "./linear";
import { setWebgpuKernels } from "./register";
import { countLaunches, fill, onCpu, useWebgpu } from "./testing";

afterAll(async () => {
  setWebgpuKernels(true);
  await tf.setBackend("cpu");
});

describe("webgpu overrides", () => {
  it("are registered on import and can be switched off and on", () => {
    const webgpu = () =>
      listKernelOverrides()
        .filter((o) => o.backend === "webgpu")
        .map((o) => o.name)
        .sort();
    expect(webgpu()).toEqual([
      "gelu",
      "layerNorm",
      "linear",
      "multiHeadAttention",
      "packedSelfAttention",
    ]);
    setWebgpuKernels(false);
    expect(webgpu()).toEqual([]);
    setWebgpuKernels(true);
    expect(webgpu()).toHaveLength(5);
  });

  it("linear: matches the portable value and gradients in one kernel each way", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const make = () => [fill([37, 24], 1), fill([24, 40], 2), fill([40], 3), fill([37, 40], 4)];
    type Lin = typeof portableLinear;
    const run = (f: Lin, [x, w, b, dy]: tf.Tensor[]) => {
      const fn = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
        f(xi as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D);
      return [fn(x, w, b), ...tf.grads(fn)([x, w, b], dy)];
    };
    const reference = await onCpu(() => run(portableLinear, make()));
    const inputs = make();
    const got = run(webgpuLinear, inputs);
    for (const [i, label] of ["y", "dx", "dw", "db"].entries())
      expectClose(await got[i].data(), reference[i], 1e-4, label);
    const [x, w, b, dy] = inputs;
    const f = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => linear(xi, wi, bi));
    const launches = await countLaunches(() => f([x, w, b], dy));
    // SitLinear (1 dispatch) and SitLinearGrad (dx; dW with the bias sum): no Transpose, no Sum.
    expect(launches.dispatches).toBe(3);
    expect(launches.kernels.filter((k) => k.startsWith("Sit"))).toEqual([
      "SitLinear",
      "SitLinearGrad",
    ]);
    expect(launches.kernels.filter((k) => k === "Transpose" || k === "Sum")).toEqual([]);
    tf.dispose([...got, ...inputs]);
  });

  it("the public functions dispatch to the WGSL kernels on webgpu", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const [x, g, b] = [fill([2, 5, 16], 5), fill([16], 6), fill([16], 7)];
    const launches = await countLaunches(() => layerNorm(x, g, b));
    expect(launches.kernels.filter((k) => k.startsWith("Sit"))).toEqual(["SitLayerNorm"]);
    tf.dispose([x, g, b]);
  });
});
