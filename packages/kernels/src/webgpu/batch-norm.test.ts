import * as tf from "@tensorflow/tfjs";
import { type MLPBlock, MLP, Rng } from "@sit/core";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { applyMlp } from "../mlp";
import { setWebgpuFusedHeads } from "./heads-register";
import { allowOneDispatchBatchNorm } from "./batch-norm";
import { checkWebgpuShaders } from "./flat-buffers";
import { countLaunches, fill, useWebgpu } from "./testing";

afterAll(async () => {
  setWebgpuFusedHeads(true);
  await tf.setBackend("cpu");
});

// SiT's CLSHead shape at a small width (Linear-BN-ReLU-Linear-BN-GELU-Linear-BN without affine),
// 70 columns (crosses the 64-column workgroups) and M = 6 rows (lanes of unequal length).
const [M, IN, HIDDEN, OUT] = [6, 24, 70, 40];
const BLOCKS: MLPBlock[] = [
  { in: IN, out: HIDDEN, norm: "batch", activation: "relu" },
  { in: HIDDEN, out: HIDDEN, norm: "batch", activation: "gelu" },
  { in: HIDDEN, out: OUT, norm: "batch_noaffine", activation: null },
];

/** A head with non-trivial γ, β, biases and running statistics. */
function head(momentum: number | null = 0.1): MLP {
  const mlp = new MLP(BLOCKS, { rng: Rng.seed(3), batchNormMomentum: momentum });
  let s = 40;
  for (const [name, v] of [...mlp.namedParameters(), ...mlp.namedBuffers()]) {
    if (name.endsWith("num_batches_tracked")) v.assign(tf.scalar(3, "int32"));
    else if (name.endsWith("running_var") || (name.endsWith(".weight") && v.rank === 1))
      v.assign(tf.add(1, tf.mul(fill(v.shape, s++, 0.3), 0.5)));
    else if (v.rank === 1) v.assign(fill(v.shape, s++, 0.2));
  }
  return mlp;
}

/** Output, the gradients of x and every parameter of `Σ y·R`, then the buffers after the step. */
async function run(fused: boolean, momentum: number | null) {
  setWebgpuFusedHeads(fused);
  const mlp = head(momentum);
  const x = fill([M, IN], 1);
  const r = fill([M, OUT], 2);
  const params = mlp.namedParameters();
  const out = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(applyMlp(mlp, x), r)) as tf.Scalar,
      params.map(([, p]) => p),
    );
    const dx = tf.grads((xi: tf.Tensor) => tf.sum(tf.mul(applyMlp(mlp, xi), r)))([x])[0];
    return [value, dx, ...params.map(([, p]) => grads[p.name])];
  });
  const buffers = mlp.namedBuffers();
  const data = await Promise.all(
    [...out, ...buffers.map(([, b]) => b)].map((t) => t.data() as Promise<Float32Array>),
  );
  tf.dispose([...out, x, r]);
  mlp.dispose();
  setWebgpuFusedHeads(true);
  const names = ["loss", "x", ...params.map(([n]) => n), ...buffers.map(([n]) => n)];
  return { data, names };
}

describe("fused projection head (BatchNorm1d + activation) on webgpu", () => {
  it.for([
    ["momentum 0.1", 0.1, true],
    ["momentum null (cumulative)", null, true],
    ["momentum 0.1, running update in a second dispatch", 0.1, false],
    ["momentum null, running update in a second dispatch", null, false],
  ] as const)(
    "matches the MLP's own layers on webgpu: loss 1e-5, every gradient 1e-4, running statistics 1e-5 (%s)",
    { timeout: 240_000 },
    async ([, momentum, oneDispatch], ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const portable = await run(false, momentum);
      allowOneDispatchBatchNorm(oneDispatch);
      const fused = await run(true, momentum).finally(() => allowOneDispatchBatchNorm(true));
      await checkWebgpuShaders();
      expect(fused.names).toEqual(portable.names);
      for (let i = 0; i < fused.data.length; i++) {
        const name = fused.names[i];
        const tol = i > 0 && !name.includes("running") && !name.includes("tracked") ? 1e-4 : 1e-5;
        // A bias right before a BatchNorm has a zero gradient in exact arithmetic (the batch mean
        // removes it): both sides are rounding noise, bounded against the layer's weight gradient.
        const maxAbs = (a: Float32Array) => Math.max(...a.map(Math.abs));
        if (/^[036]\.bias$/.test(name))
          for (const side of [fused, portable])
            expect(maxAbs(side.data[i]), name).toBeLessThan(1e-4 * maxAbs(side.data[i - 1]));
        else expectClose(fused.data[i], portable.data[i], tol, name, 1e-6);
      }
    },
  );

  it("is one tfjs kernel per Linear and per BatchNorm each way (6 dispatches forward), and leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const mlp = head();
    const x = fill([M, IN], 5);
    // Per block: the GEMM, and the norm with its running statistics' update (lavapipe offers 16
    // storage buffers per stage); with WebGPU's default 8, the update is a dispatch of its own.
    allowOneDispatchBatchNorm(false);
    const eight = await countLaunches(() => tf.tidy(() => applyMlp(mlp, x))).finally(() =>
      allowOneDispatchBatchNorm(true),
    );
    expect(eight.dispatches).toBe(9);
    const fwd = await countLaunches(() => tf.tidy(() => applyMlp(mlp, x)));
    expect(fwd.kernels).toEqual([
      "SitLinear",
      "SitBatchNorm",
      "SitLinear",
      "SitBatchNorm",
      "SitLinear",
      "SitBatchNormPlain",
    ]);
    expect(fwd.dispatches).toBe(6);
    const params = mlp.parameters();
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.sum(applyMlp(mlp, x)) as tf.Scalar,
          params,
        );
        return [value, ...Object.values(grads)];
      });
    const both = await countLaunches(step);
    const ours = both.kernels.filter((k) => k.startsWith("Sit"));
    expect(ours.filter((k) => k === "SitBatchNormGrad")).toHaveLength(3);
    expect(ours.filter((k) => k === "SitLinearGrad")).toHaveLength(3);
    const settled = async () => {
      const t = tf.tidy(() => applyMlp(mlp, x));
      await t.data();
      t.dispose();
      return tf.memory().numTensors;
    };
    const before = await settled();
    for (let i = 0; i < 3; i++) tf.dispose(step());
    expect(await settled()).toBe(before);
    tf.dispose(x);
    mlp.dispose();
  });

  it("keeps the MLP's own layers for eval-mode norms and a single row", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const mlp = head();
    mlp.eval();
    const x = fill([M, IN], 6);
    const evalRun = await countLaunches(() => tf.tidy(() => applyMlp(mlp, x)));
    expect(evalRun.kernels.some((k) => k.startsWith("SitBatchNorm"))).toBe(false);
    mlp.train();
    const one = fill([1, IN], 7);
    expect(() => tf.tidy(() => applyMlp(mlp, one))).toThrow(/more than 1 value per feature/);
    tf.dispose([x, one]);
    mlp.dispose();
  });
});
