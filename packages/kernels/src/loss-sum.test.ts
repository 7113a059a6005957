import * as tf from "@tensorflow/tfjs";
import { useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { lossSum } from "./index";
import { LOSS_SUM_GRAD_KERNEL, LOSS_SUM_KERNEL } from "./webgpu/loss-sum";

// Values where λ·b must be rounded before the add (an fma would change the last bits).
const CASES: [number, number, number][] = [
  [4.4271464, 0.01510944, 5],
  [1 / 3, 0.1 + 1e-7, 0.7],
  [-2.5e-3, 123.456, 1e-3],
];

/** lossSum's reported vector and the gradients of `k·total` (k: an upstream gradient, as a loss scale). */
async function run(backend: string, a: number, b: number, lambda: number) {
  await tf.setBackend(backend);
  const [x, y] = [tf.scalar(a), tf.scalar(b)];
  const before = tf.memory().numTensors;
  let losses: tf.Tensor | null = null;
  const profile = await tf.profile(() => {
    const g = tf.grads((p: tf.Tensor, q: tf.Tensor) => {
      const out = lossSum(p as tf.Scalar, q as tf.Scalar, lambda);
      losses = tf.keep(out.losses);
      return tf.mul(out.total, 1024);
    })([x, y]);
    return g;
  });
  const grads = profile.result as unknown as tf.Tensor[];
  const read = {
    losses: Array.from(await (losses as unknown as tf.Tensor).data()),
    grads: await Promise.all(grads.map(async (g) => (await g.data())[0])),
  };
  const kernels = profile.kernels.map((k) => k.name);
  tf.dispose([...grads, losses as unknown as tf.Tensor]);
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([x, y]);
  return { read, kernels };
}

describe("lossSum", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("portable: [a + λ·b, a, b] and gradients [dy, λ·dy], as tfjs's add and mul", async () => {
    for (const [a, b, lambda] of CASES) {
      const { read } = await run("cpu", a, b, lambda);
      const [fa, fb] = [Math.fround(a), Math.fround(b)];
      const total = Math.fround(fa + Math.fround(Math.fround(lambda) * fb));
      expect(read.losses).toEqual([total, fa, fb]);
      expect(read.grads).toEqual([1024, Math.fround(1024 * Math.fround(lambda))]);
    }
  });

  it("webgpu: exactly the portable bits, one kernel each way, leak-free", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    for (const [a, b, lambda] of CASES) {
      const cpu = await run("cpu", a, b, lambda);
      const gpu = await run("webgpu", a, b, lambda);
      expect(gpu.read).toEqual(cpu.read);
      expect(gpu.kernels.filter((k) => k.startsWith("SitLossSum"))).toEqual([
        LOSS_SUM_KERNEL,
        LOSS_SUM_GRAD_KERNEL,
      ]);
      expect(gpu.kernels).not.toContain("Pack");
    }
  });

  it("checks its arguments", () => {
    const [s, v] = [tf.scalar(1), tf.tensor1d([1, 2])];
    expect(() => lossSum(v as unknown as tf.Scalar, s, 1)).toThrow(/a: expected a float32 scalar/);
    expect(() => lossSum(s, v as unknown as tf.Scalar, 1)).toThrow(/b: expected a float32 scalar/);
    expect(() => lossSum(s, s, Number.NaN)).toThrow(/lambda: expected a finite number/);
    tf.dispose([s, v]);
  });
});
