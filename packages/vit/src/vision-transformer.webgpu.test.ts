import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { setWebgpuFusedBlock, setWebgpuKernels } from "@sit/kernels";
import { expectClose, useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { VisionTransformer, type VitForwardOptions } from "./vision-transformer";

afterAll(async () => {
  setWebgpuKernels(true);
  setWebgpuFusedBlock(true);
  await tf.setBackend("cpu");
});

const build = (dropPathRate: number) =>
  new VisionTransformer({
    imgSize: 16,
    patchSize: 4,
    embedDim: 48,
    depth: 2,
    numHeads: 2,
    dropPathRate,
    rng: Rng.seed(5),
  });

/** Loss, then the gradient of every parameter (in parameter order), as plain arrays. */
async function step(dropPathRate: number, checkpointBlocks: boolean): Promise<Float32Array[]> {
  const m = build(dropPathRate);
  const images = tf.tensor4d(
    Rng.seed(7).fillNormal(new Float32Array(2 * 16 * 16 * 3), 0, 1),
    [2, 16, 16, 3],
  );
  const weights = tf.tensor3d(
    Rng.seed(9).fillNormal(new Float32Array(2 * 17 * 48), 0, 1),
    [2, 17, 48],
  );
  const out = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const o = m.forward(images, { rng: Rng.seed(8), checkpointBlocks });
      return tf.sum(tf.mul(o.tokens, weights)) as tf.Scalar;
    });
    return [value, ...m.parameters().map((p) => grads[p.name])];
  });
  const data = await Promise.all(out.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose([...out, images, weights]);
  m.dispose();
  return data;
}

describe("VisionTransformer on webgpu with the fused block", () => {
  it.for([
    ["no drop path", 0, false],
    ["drop path", 0.4, false],
    ["checkpointed blocks", 0, true],
    ["checkpointed blocks, drop path", 0.4, true],
  ] as const)(
    "matches the portable block on webgpu: loss and every parameter's gradient (%s)",
    async ([, dropPathRate, checkpointBlocks], ctx) => {
      if (!(await useWebgpu(ctx))) return;
      setWebgpuFusedBlock(false);
      const portable = await step(dropPathRate, checkpointBlocks);
      setWebgpuFusedBlock(true);
      const fused = await step(dropPathRate, checkpointBlocks);
      expectClose(fused[0], portable[0], 1e-5, "loss");
      const names = build(0)
        .namedParameters()
        .map(([n]) => n);
      for (let i = 1; i < fused.length; i++)
        expectClose(fused[i], portable[i], 1e-4, `grad ${names[i - 1]}`);
    },
  );

  it("runs its blocks as one kernel per direction (SitBlockStackTrain, SitBlockStackGrad), fewer kernels than the portable block, and leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // Drop path 0 → 0.4 over the two blocks: block 1 carries the factors.
    const m = build(0.4);
    const images = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 4);
    const run = () =>
      tf.tidy(() => tf.variableGrads(() => tf.mean(tf.square(m.forward(images).tokens))).value);
    const profile = async () =>
      (await tf.profile(async () => tf.dispose(run()))).kernels.map((k) => k.name);
    const fusedKernels = await profile();
    const count = (name: string) => fusedKernels.filter((k) => k === name).length;
    expect(fusedKernels.filter((k) => k.startsWith("SitBlock"))).toEqual([
      "SitBlockStackTrain",
      "SitBlockStackGrad",
    ]);
    // The patch embedding is the only other linear.
    expect([count("SitLinear"), count("SitLinearGrad")]).toEqual([1, 1]);
    expect(fusedKernels).not.toContain("SitPackedAttention");
    setWebgpuFusedBlock(false);
    const portableKernels = await profile();
    setWebgpuFusedBlock(true);
    expect(fusedKernels.length).toBeLessThan(portableKernels.length);
    // Attention maps take the portable block.
    const withMaps = tf.tidy(() => m.forward(images, { attentions: true }).attentions!.length);
    expect(withMaps).toBe(2);
    run().dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run().dispose();
    expect(tf.memory().numTensors).toBe(before);
    images.dispose();
    m.dispose();
  });

  it("runs its blocks as one SitBlockStack kernel when no tape records (eval mode), with the per-block kernels' output", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // Drop path in train mode: eval mode drops nothing, so every block joins the stack.
    const m = build(0.4).eval();
    const images = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 4);
    const tokens = (o?: VitForwardOptions) => tf.tidy(() => m.forward(images, o).tokens);
    const kernels = async (fn: () => tf.Tensor) =>
      (await tf.profile(async () => tf.dispose(fn()))).kernels
        .map((k) => k.name)
        .filter((k) => k.startsWith("SitBlock"));
    expect(await kernels(() => tokens())).toEqual(["SitBlockStack"]);
    // The last block's attention map: the blocks before it stacked, the last one portable.
    expect(await kernels(() => tokens({ attentions: "last" }))).toEqual(["SitBlockStack"]);
    // Under a tape the taped stack: one kernel each way, the same output.
    let perBlock: tf.Tensor | undefined;
    const taped = () =>
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => {
          perBlock = tf.keep(m.forward(images).tokens);
          return tf.sum(perBlock) as tf.Scalar;
        });
        tf.dispose(Object.values(grads));
        return perBlock!;
      });
    expect(await kernels(taped)).toEqual(["SitBlockStackTrain", "SitBlockStackGrad"]);
    const stacked = tokens();
    const reference = taped();
    expectClose(await stacked.data(), await reference.data(), 1e-6, "tokens", 1e-7);
    tf.dispose([stacked, reference]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tokens().dispose();
    expect(tf.memory().numTensors).toBe(before);
    images.dispose();
    m.dispose();
  });
});
