import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { portableTransformerBlock, transformerBlock } from "../transformer-block";
import { B, D, HEADS, N, flat, run, weights } from "./block-fixtures";
import { savedInputNames } from "./block";
import { checkWebgpuShaders, rawDispatchCount } from "./flat-buffers";
import { setGemmSplitK } from "./gemm-split";
import { countLaunches, fill, settledUsage, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

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

  it("matches the portable block on cpu with rows wider than LayerNorm's workgroup (D 160, 5 row blocks)", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // 64 LayerNorm threads over 160 columns (three per thread, the last partly idle); 150 rows: the
    // backward's LayerNorm partial sums over four whole blocks of 32 rows and a ragged one.
    const sizes = { b: 5, n: 30, d: 160, heads: 2, hidden: 96 };
    // The reference on the cpu backend (tfjs's own ops): on webgpu the portable block's LayerNorm
    // runs the same WGSL as the fused block's.
    await tf.setBackend("cpu");
    const wc = weights(40, true, sizes);
    const portable = await run(portableTransformerBlock, wc, true, sizes);
    tf.dispose(flat(wc).map(([, t]) => t));
    await tf.setBackend("webgpu");
    const w = weights(40, true, sizes);
    const fused = await run(transformerBlock, w, true, sizes);
    await checkWebgpuShaders();
    expectClose(fused.data[0], portable.data[0], 1e-5, "output", 1e-6);
    for (let i = 1; i < fused.data.length; i++)
      expectClose(fused.data[i], portable.data[i], 1e-4, `grad ${fused.names[i - 1]}`, 1e-6);
    tf.dispose(flat(w).map(([, t]) => t));
  });

  it("with its weight gradients split along K matches the unsplit portable block (1e-5 / 1e-4)", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const w = weights(30);
    try {
      setGemmSplitK(1);
      const portable = await run(portableTransformerBlock, w, true);
      // The 51 token rows in slices of 32 and 19 (whole BK steps): every dW and bias gradient.
      setGemmSplitK(3);
      const fused = await run(transformerBlock, w, true);
      await checkWebgpuShaders();
      expectClose(fused.data[0], portable.data[0], 1e-5, "output", 1e-6);
      for (let i = 1; i < fused.data.length; i++)
        expectClose(fused.data[i], portable.data[i], 1e-4, `grad ${fused.names[i - 1]}`, 1e-6);
    } finally {
      setGemmSplitK("auto");
      tf.dispose(flat(w).map(([, t]) => t));
    }
  });

  it("is one tfjs kernel of 5 dispatches forward and one of 13 backward (split or not), and leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const w = weights(20);
    const x = fill([B, N, D], 3);
    const params = flat(w).map(([, t]) => t);
    const block = (xi: tf.Tensor) => transformerBlock(xi as tf.Tensor3D, w, { numHeads: HEADS });
    const forward = () => block(x).output;
    const fwd = await countLaunches(() => tf.tidy(forward));
    expect(fwd.kernels).toEqual(["SitBlock"]);
    expect(fwd.dispatches).toBe(5);
    const step = () => tf.tidy(() => tf.grads((xi: tf.Tensor) => tf.sum(block(xi).output))([x])[0]);
    const raw0 = rawDispatchCount();
    const both = await countLaunches(step);
    // Everything of the block is encoded directly; the loss's Sum and its gradient are tfjs's.
    expect(rawDispatchCount() - raw0).toBe(5 + 13);
    expect(both.kernels.filter((k) => k.startsWith("SitBlock"))).toEqual([
      "SitBlock",
      "SitBlockGrad",
    ]);
    // The tape keeps one handle on the block's workspace, not one per input, and without tfjs's
    // tape copy (an Identity call, which ran just before the kernel): tape.ts. (The loss's Sum
    // still saves its input the tfjs way.)
    expect(both.kernels.slice(0, both.kernels.indexOf("SitBlock") + 1)).toEqual(["SitBlock"]);
    tf.dispose(step());
    // Split weight gradients (two slices each here) add no dispatch: their slices' sums are the
    // backward's last dispatch, with the LayerNorms' (strided-sums.ts). (Forced, the split also
    // takes the three plain input-gradient products, whose sums must precede the passes reading
    // them: 3 more, one each. "auto" splits only products with few output tiles, which these are
    // not at a training batch.)
    try {
      setGemmSplitK(2);
      const raw1 = rawDispatchCount();
      tf.dispose(step());
      expect(rawDispatchCount() - raw1).toBe(5 + 13 + 3);
    } finally {
      setGemmSplitK("auto");
    }
    // GPU bytes in use too (the saved workspace is a pooled buffer behind a [1] handle).
    const settled = () => settledUsage(forward);
    const before = await settled();
    for (let i = 0; i < 3; i++) tf.dispose(step());
    expect(await settled()).toEqual(before);
    tf.dispose([x, ...params]);
  });

  it("hands weights that are Variables to its gradient by reference: the same values and gradients, one saved handle fewer per weight", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const plain = weights(50);
    const asVariables = Object.fromEntries(
      Object.entries(plain).map(([name, layer]) => [
        name,
        Object.fromEntries(
          Object.entries(layer).map(([k, v]) => [k, v instanceof tf.Tensor ? tf.variable(v) : v]),
        ),
      ]),
    ) as unknown as typeof plain;
    const engine = tf.engine() as unknown as { trackTensor: (...a: unknown[]) => unknown };
    const track = engine.trackTensor;
    const counted = async (w: typeof plain) => {
      let made = 0;
      engine.trackTensor = function (this: unknown, ...a: unknown[]) {
        made++;
        return track.apply(this, a);
      };
      try {
        return { result: await run(transformerBlock, w, true), made };
      } finally {
        engine.trackTensor = track;
      }
    };
    const byHandle = await counted(plain);
    const byReference = await counted(asVariables);
    for (let i = 0; i < byHandle.result.data.length; i++)
      expect(Array.from(byReference.result.data[i]), `output ${i}`).toEqual(
        Array.from(byHandle.result.data[i]),
      );
    const weightsSaved = savedInputNames({ scaled: true }).filter(
      (name) => !["x", "s0", "s1"].includes(name),
    ).length;
    expect(byHandle.made - byReference.made).toBe(weightsSaved);
    tf.dispose([...flat(plain).map(([, t]) => t), ...flat(asVariables).map(([, t]) => t)]);
  });
});
