import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import {
  type TransformerBlockWeights,
  portableTransformerBlock,
  transformerBlock,
} from "../transformer-block";
import { checkWebgpuShaders, rawDispatchCount } from "./flat-buffers";
import { countLaunches, fill, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

// B·N = 51 rows and widths that cross the GEMM's 64 × 64 × 16 tiles; head dim 24.
const [B, N, D, HEADS, HIDDEN] = [3, 17, 48, 2, 100];

function weights(seed: number, qkvBias = true): TransformerBlockWeights {
  const lin = (i: number, o: number, s: number, bias = true) => ({
    weight: fill([i, o], s, i ** -0.5),
    bias: bias ? fill([o], s + 1, 0.1) : null,
  });
  const norm = (s: number) => ({
    weight: tf.add(1, fill([D], s, 0.2)),
    bias: fill([D], s + 1, 0.2),
    eps: 1e-6,
  });
  return {
    norm1: norm(seed),
    qkv: lin(D, 3 * D, seed + 2, qkvBias),
    proj: lin(D, D, seed + 4),
    norm2: norm(seed + 6),
    fc1: lin(D, HIDDEN, seed + 8),
    fc2: lin(HIDDEN, D, seed + 10),
  };
}

function flat(w: TransformerBlockWeights): [string, tf.Tensor][] {
  const out: [string, tf.Tensor][] = [];
  for (const [name, layer] of Object.entries(w))
    for (const key of ["weight", "bias"] as const) {
      const t = (layer as { weight: tf.Tensor; bias: tf.Tensor | null })[key];
      if (t) out.push([`${name}.${key}`, t]);
    }
  return out;
}

type BlockFn = typeof transformerBlock;

/** Output, then the gradients of x and of every weight of `Σ y·R`, as arrays. */
async function run(block: BlockFn, w: TransformerBlockWeights, drop: boolean) {
  const x = fill([B, N, D], 1);
  const r = fill([B, N, D], 2);
  const scales: [tf.Tensor, tf.Tensor] | null = drop
    ? [tf.tensor1d([2, 0, 2]), tf.tensor1d([0, 2, 2])]
    : null;
  const params = flat(w);
  const out = tf.tidy(() => {
    const f = (xi: tf.Tensor, ...ps: tf.Tensor[]) => {
      let k = 0;
      const rebuilt = Object.fromEntries(
        Object.entries(w).map(([name, layer]) => {
          const l = layer as { weight: tf.Tensor; bias: tf.Tensor | null; eps?: number };
          const weight = ps[k++];
          const bias = l.bias ? ps[k++] : null;
          return [name, l.eps === undefined ? { weight, bias } : { weight, bias, eps: l.eps }];
        }),
      ) as unknown as TransformerBlockWeights;
      return block(xi as tf.Tensor3D, rebuilt, { numHeads: HEADS, dropScales: scales }).output;
    };
    const y = f(x, ...params.map(([, t]) => t));
    const grads = tf.grads((xi: tf.Tensor, ...ps: tf.Tensor[]) => tf.sum(tf.mul(f(xi, ...ps), r)))([
      x,
      ...params.map(([, t]) => t),
    ]);
    return [y, ...grads];
  });
  const data = await Promise.all(out.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose([...out, x, r, ...(scales ?? [])]);
  return { data, names: ["x", ...params.map(([n]) => n)] };
}

describe("fused transformer block on webgpu", () => {
  it.for([
    ["no drop path", false, true],
    ["drop path", true, true],
    ["no qkv bias, drop path", true, false],
  ] as const)(
    "matches the portable block on webgpu: output 1e-5, every gradient 1e-4 (%s)",
    // Each case compiles its shaders on a CPU Vulkan driver: seconds when idle, more under load.
    { timeout: 240_000 },
    async ([, drop, qkvBias], ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const w = weights(10, qkvBias);
      const portable = await run(portableTransformerBlock, w, drop);
      const fused = await run(transformerBlock, w, drop);
      await checkWebgpuShaders();
      expectClose(fused.data[0], portable.data[0], 1e-5, "output", 1e-6);
      for (let i = 1; i < fused.data.length; i++)
        expectClose(fused.data[i], portable.data[i], 1e-4, `grad ${fused.names[i - 1]}`, 1e-6);
      tf.dispose(flat(w).map(([, t]) => t));
    },
  );

  it("is one tfjs kernel of 7 dispatches forward and one of 17 backward, and leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const w = weights(20);
    const x = fill([B, N, D], 3);
    const params = flat(w).map(([, t]) => t);
    const block = (xi: tf.Tensor) => transformerBlock(xi as tf.Tensor3D, w, { numHeads: HEADS });
    const forward = () => block(x).output;
    const fwd = await countLaunches(() => tf.tidy(forward));
    expect(fwd.kernels).toEqual(["SitBlock"]);
    expect(fwd.dispatches).toBe(7);
    const step = () => tf.tidy(() => tf.grads((xi: tf.Tensor) => tf.sum(block(xi).output))([x])[0]);
    const raw0 = rawDispatchCount();
    const both = await countLaunches(step);
    // Everything of the block is encoded directly; the loss's Sum and its gradient are tfjs's.
    expect(rawDispatchCount() - raw0).toBe(7 + 17);
    expect(both.kernels.filter((k) => k.startsWith("SitBlock"))).toEqual([
      "SitBlock",
      "SitBlockGrad",
    ]);
    // The tape saves one tensor of the block (the workspace: tfjs clones it, one Identity call,
    // recorded before the kernel itself), not one per input.
    expect(both.kernels.slice(0, both.kernels.indexOf("SitBlock") + 1)).toEqual([
      "Identity",
      "SitBlock",
    ]);
    tf.dispose(step());
    // GPU bytes in use too (the saved workspace is a pooled buffer behind a [1] handle), read
    // after a submit, which releases the buffers of tensors disposed while their commands pended.
    const settled = async () => {
      const t = tf.tidy(forward);
      await t.data();
      t.dispose();
      return [
        tf.memory().numTensors,
        (tf.memory() as unknown as { numBytesInGPU: number }).numBytesInGPU,
      ];
    };
    const before = await settled();
    for (let i = 0; i < 3; i++) tf.dispose(step());
    expect(await settled()).toEqual(before);
    tf.dispose([x, ...params]);
  });
});
