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
import { B, D, HEADS, HIDDEN, N, asVariables, flat, weights } from "./block-fixtures";
import {
  BLOCK_STACK_KERNEL,
  parseStackInputName,
  registerBlockStackKernel,
  stackInputName,
} from "./block-stack";
import { BLOCK_STACK_GRAD_KERNEL, BLOCK_STACK_TRAIN_KERNEL } from "./block-stack-train";
import { checkWebgpuShaders } from "./flat-buffers";
import { countLaunches, fill, onCpu, settledUsage, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

const options = { numHeads: HEADS };

describe("the stack kernel's input names", () => {
  it("parse back into the block and its input name, and nothing else parses", () => {
    expect(parseStackInputName(stackInputName(0, "ln1g"))).toEqual({ block: 0, name: "ln1g" });
    expect(parseStackInputName(stackInputName(11, "fc2B"))).toEqual({ block: 11, name: "fc2B" });
    for (const other of ["x", "b.ln1g", "bx.ln1g", "b1", "c1.ln1g", "b-1.ln1g", "b1."])
      expect(parseStackInputName(other)).toBeNull();
  });
});

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

  it("under a tape is one taped kernel each way (drop path on some blocks, weights as Variables or not): the output and the gradients of x and of every weight are the loop's (1e-6) and the portable blocks' on cpu (1e-5, 1e-4), and it leaks nothing", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // Three blocks: the gradients between blocks go through both halves of the stack's scratch.
    // The second block's weights are Variables (the tape holds them by reference).
    const blocks = [weights(10), asVariables(weights(20)), weights(30)];
    const params = blocks.flatMap((w) => flat(w).map(([, t]) => t));
    const x = fill([B, N, D], 1) as tf.Tensor3D;
    const r = fill([B, N, D], 2);
    // No drop path on the first block (as a ViT's rate-0 first block); samples drop one branch or
    // the other, or keep both, on the others.
    const factors = (a: number[], b: number[]) =>
      [tf.tensor1d(a.map((k) => k * 1.25)), tf.tensor1d(b.map((k) => k * 1.25))] as [
        tf.Tensor,
        tf.Tensor,
      ];
    const dropScales = [null, factors([1, 0, 1], [0, 1, 1]), factors([0, 1, 1], [1, 1, 0])];
    const stack = (xi: tf.Tensor3D) => transformerStack(xi, blocks, { ...options, dropScales });
    const loopDrop = (xi: tf.Tensor3D) =>
      blocks.reduce(
        (y, w, i) => transformerBlock(y, w, { ...options, dropScales: dropScales[i] }).output,
        xi,
      );
    const gradsOf = (f: (xi: tf.Tensor3D) => tf.Tensor) =>
      tf.tidy(() =>
        tf.grads((xi: tf.Tensor, ..._ps: tf.Tensor[]) => tf.sum(tf.mul(f(xi as tf.Tensor3D), r)))([
          x,
          ...params,
        ]),
      );
    const outputAndGrads = (f: (xi: tf.Tensor3D) => tf.Tensor) => [
      tf.tidy(() => f(x)),
      ...gradsOf(f),
    ];
    const taped = await countLaunches(() => gradsOf(stack));
    await checkWebgpuShaders();
    expect(taped.kernels.filter((k) => k.startsWith("SitBlock"))).toEqual([
      BLOCK_STACK_TRAIN_KERNEL,
      BLOCK_STACK_GRAD_KERNEL,
    ]);
    // The same dispatches as one block kernel each way per block.
    const reference = await countLaunches(() => gradsOf(loopDrop));
    expect(reference.kernels.filter((k) => k.startsWith("SitBlock"))).toHaveLength(6);
    expect(taped.dispatches).toBe(reference.dispatches);
    const stacked = outputAndGrads(stack);
    const looped = outputAndGrads(loopDrop);
    const names = ["y", "x", ...blocks.flatMap((w, i) => flat(w).map(([n]) => `${i}.${n}`))];
    for (let i = 0; i < stacked.length; i++)
      expectClose(await stacked[i].data(), await looped[i].data(), 1e-6, names[i], 1e-7);
    // And against the portable blocks on the cpu backend (tfjs's own ops, none of this package's
    // WGSL), at the fused block's tolerances (forward 1e-5, gradients 1e-4).
    const cpu = await onCpu(() => {
      const bs = [weights(10), weights(20), weights(30)];
      const ps = bs.flatMap((w) => flat(w).map(([, t]) => t));
      const [xc, rc] = [fill([B, N, D], 1) as tf.Tensor3D, fill([B, N, D], 2)];
      const ds = [null, factors([1, 0, 1], [0, 1, 1]), factors([0, 1, 1], [1, 1, 0])];
      const f = (xi: tf.Tensor3D) =>
        bs.reduce(
          (y, w, i) => portableTransformerBlock(y, w, { ...options, dropScales: ds[i] }).output,
          xi,
        );
      const grads = tf.grads((xi: tf.Tensor, ..._ps: tf.Tensor[]) =>
        tf.sum(tf.mul(f(xi as tf.Tensor3D), rc)),
      )([xc, ...ps]);
      return [f(xc), ...grads];
    });
    for (let i = 0; i < stacked.length; i++)
      expectClose(
        await stacked[i].data(),
        cpu[i],
        i === 0 ? 1e-5 : 1e-4,
        `${names[i]} vs cpu`,
        1e-6,
      );
    tf.dispose([...stacked, ...looped]);
    // Tensors and GPU bytes in use, step after step.
    const settled = () =>
      settledUsage(() => tf.concat(outputAndGrads(stack).map((t) => t.flatten())));
    const before = await settled();
    for (let i = 0; i < 3; i++) tf.dispose(outputAndGrads(stack));
    expect(await settled()).toEqual(before);
    tf.dispose([x, r, ...dropScales.flatMap((s) => s ?? [])]);
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

  it("rejects drop-path factors that are not one entry per block, or of the wrong size, naming the argument", () => {
    const blocks = [weights(10), weights(20)];
    const x = fill([B, N, D], 1) as tf.Tensor3D;
    expect(() => transformerStack(x, blocks, { ...options, dropScales: [null] })).toThrow(
      /transformerStack options\.dropScales: expected one entry \(two tensors or null\) per block, 2 in all, got/,
    );
    const short = [tf.ones([B - 1]), tf.ones([B])] as [tf.Tensor, tf.Tensor];
    expect(() => transformerStack(x, blocks, { ...options, dropScales: [null, short] })).toThrow(
      /transformerStack options\.dropScales\[1\]: expected null or two tensors \[3\] \(block 1's drop-path factors\), got/,
    );
    tf.dispose([x, ...short]);
    release(blocks);
  });
});
