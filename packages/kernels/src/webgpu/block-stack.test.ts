import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import {
  type TransformerBlockWeights,
  fusedBlockAttrs,
  fusedBlockInputs,
  portableTransformerBlock,
  transformerBlock,
} from "../transformer-block";
import { transformerStack } from "../transformer-stack";
import { B, D, HEADS, HIDDEN, N, flat, weights } from "./block-fixtures";
import { BLOCK_STACK_KERNEL, registerBlockStackKernel, stackInputName } from "./block-stack";
import { checkWebgpuShaders } from "./flat-buffers";
import { countLaunches, fill, onCpu, settledUsage, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

const options = { numHeads: HEADS };

/** The blocks one after the other, one transformerBlock call each (the reference). */
function loop(x: tf.Tensor3D, blocks: TransformerBlockWeights[]): tf.Tensor3D {
  return tf.tidy(() => blocks.reduce((y, w) => transformerBlock(y, w, options).output, x));
}

const release = (blocks: TransformerBlockWeights[]) =>
  tf.dispose(blocks.flatMap((w) => flat(w).map(([, t]) => t)));

describe("transformer blocks in a row as one kernel on webgpu (SitBlockStack)", () => {
  it("matches one transformerBlock per block (1e-6) and the portable blocks on cpu (1e-5), is one tfjs kernel of the blocks' dispatches, and leaks nothing", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const blocks = [weights(10), weights(20), weights(30)];
    const x = fill([B, N, D], 1) as tf.Tensor3D;
    const stack = () => transformerStack(x, blocks, options);
    const reference = await countLaunches(() => loop(x, blocks));
    expect(reference.kernels).toEqual(["SitBlock", "SitBlock", "SitBlock"]);
    const fused = await countLaunches(stack);
    await checkWebgpuShaders();
    expect(fused.kernels).toEqual([BLOCK_STACK_KERNEL]);
    expect(fused.dispatches).toBe(reference.dispatches);
    const [y, r] = [stack(), loop(x, blocks)];
    expectClose(await y.data(), await r.data(), 1e-6, "output", 1e-7);
    // And against the portable blocks on the cpu backend (tfjs's own ops, none of this package's
    // WGSL), the fused block's forward tolerance.
    const [cpu] = await onCpu(() => {
      const xc = fill([B, N, D], 1) as tf.Tensor3D;
      const bs = [weights(10), weights(20), weights(30)];
      return [bs.reduce((yi, w) => portableTransformerBlock(yi, w, options).output, xc)];
    });
    expectClose(await y.data(), cpu, 1e-5, "output vs cpu", 1e-6);
    tf.dispose([y, r]);
    // Tensors and GPU bytes in use (the intermediate outputs the kernel disposed included).
    const settled = () => settledUsage(stack);
    const before = await settled();
    for (let i = 0; i < 3; i++) stack().dispose();
    expect(await settled()).toEqual(before);
    tf.dispose(x);
    release(blocks);
  });

  it("under a tape runs one transformerBlock per block: the gradients of x and of every weight are the loop's", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const blocks = [weights(10), weights(20)];
    const params = blocks.flatMap((w) => flat(w).map(([, t]) => t));
    const x = fill([B, N, D], 1) as tf.Tensor3D;
    const r = fill([B, N, D], 2);
    const gradsOf = (f: (xi: tf.Tensor3D) => tf.Tensor) =>
      tf.tidy(() =>
        tf.grads((xi: tf.Tensor, ..._ps: tf.Tensor[]) => tf.sum(tf.mul(f(xi as tf.Tensor3D), r)))([
          x,
          ...params,
        ]),
      );
    const taped = await countLaunches(() => gradsOf((xi) => transformerStack(xi, blocks, options)));
    expect(taped.kernels).not.toContain(BLOCK_STACK_KERNEL);
    expect(taped.kernels.filter((k) => k === "SitBlockGrad")).toHaveLength(2);
    const stacked = gradsOf((xi) => transformerStack(xi, blocks, options));
    const looped = gradsOf((xi) => loop(xi, blocks));
    for (let i = 0; i < stacked.length; i++)
      expectClose(await stacked[i].data(), await looped[i].data(), 1e-6, `grad ${i}`, 1e-7);
    tf.dispose([...stacked, ...looped, x, r]);
    release(blocks);
  });

  it("has no gradient: the kernel run under a tape fails loudly in the backward", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    registerBlockStackKernel();
    const w = weights(10);
    const x = fill([B, N, D], 1) as tf.Tensor3D;
    const inputs: Record<string, tf.Tensor> = { x };
    for (const [name, t] of Object.entries(fusedBlockInputs(w)))
      inputs[stackInputName(0, name)] = t;
    const flags = { save: false, scaled: false };
    const attrs = { ...fusedBlockAttrs(x, w, HEADS, HIDDEN, flags), depth: 1 };
    const run = (xi: tf.Tensor) =>
      tf.sum(
        tf
          .engine()
          .runKernel(BLOCK_STACK_KERNEL, { ...inputs, x: xi }, attrs as never) as tf.Tensor,
      );
    expect(() => tf.tidy(() => tf.grads(run)([x]))).toThrow(/has no gradient/);
    tf.dispose(x);
    release([w]);
  });

  it("blocks that differ (one without a qkv bias) run one transformerBlock each, with the same result", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const blocks = [weights(10), weights(20, false)];
    const x = fill([B, N, D], 1) as tf.Tensor3D;
    const run = await countLaunches(() => transformerStack(x, blocks, options));
    expect(run.kernels).toEqual(["SitBlock", "SitBlock"]);
    const [y, r] = [transformerStack(x, blocks, options), loop(x, blocks)];
    expectClose(await y.data(), await r.data(), 1e-6, "output", 1e-7);
    tf.dispose([y, r, x]);
    release(blocks);
  });
});
