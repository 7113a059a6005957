import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { randomTensor } from "./testing/finite-difference";
import { type TransformerBlockWeights, transformerBlock } from "./transformer-block";

function weights(d: number, hidden: number, rng: Rng): TransformerBlockWeights {
  const lin = (i: number, o: number) => ({
    weight: randomTensor([i, o], rng),
    bias: randomTensor([o], rng),
  });
  const norm = () => ({ weight: randomTensor([d], rng), bias: randomTensor([d], rng), eps: 1e-6 });
  return {
    norm1: norm(),
    qkv: lin(d, 3 * d),
    proj: lin(d, d),
    norm2: norm(),
    fc1: lin(d, hidden),
    fc2: lin(hidden, d),
  };
}

describe.each(TEST_BACKENDS)("transformerBlock on %s", (backend) => {
  it("takes the portable path (no fused kernel on this backend) and drops a sample's branch with factor 0", async () => {
    await withBackend(backend, async () => {
      const rng = Rng.seed(3);
      const w = weights(8, 16, rng);
      const x = randomTensor([2, 5, 8], rng) as tf.Tensor3D;
      const info = await tf.profile(() => transformerBlock(x, w, { numHeads: 2 }).output);
      expect(info.kernels.map((k) => k.name).filter((k) => k.startsWith("SitBlock"))).toEqual([]);
      // Both branches of sample 0 dropped: the block is the identity on it.
      const scales: [tf.Tensor, tf.Tensor] = [tf.tensor1d([0, 1]), tf.tensor1d([0, 1])];
      const y = transformerBlock(x, w, { numHeads: 2, dropScales: scales }).output;
      const [y0, x0] = await Promise.all([y.slice(0, 1).data(), x.slice(0, 1).data()]);
      expect(Array.from(y0)).toEqual(Array.from(x0));
      tf.dispose([x, y, ...scales]);
    });
  });
});

describe("transformerBlock arguments", () => {
  it("names the argument, the value and what was expected", () => {
    const rng = Rng.seed(1);
    const w = weights(8, 16, rng);
    const x = randomTensor([2, 5, 8], rng) as tf.Tensor3D;
    expect(() => transformerBlock(x, w, { numHeads: 3 })).toThrow(ConfigError);
    expect(() => transformerBlock(x, w, { numHeads: 3 })).toThrow(
      /numHeads: expected a divisor of D = 8, got 3/,
    );
    const bad = { ...w, fc2: { weight: tf.zeros([8, 8]), bias: null } };
    expect(() => transformerBlock(x, bad, { numHeads: 2 })).toThrow(ShapeError);
    expect(() => transformerBlock(x, bad, { numHeads: 2 })).toThrow(
      /fc2.weight: expected a float32 tensor of shape \[16,8\]/,
    );
    const badScales: [tf.Tensor, tf.Tensor] = [tf.ones([3]), tf.ones([2])];
    expect(() => transformerBlock(x, w, { numHeads: 2, dropScales: badScales })).toThrow(
      /dropScales\[0\]: expected a float32 tensor of shape \[2\]/,
    );
    expect(() =>
      transformerBlock(tf.zeros([2, 8]) as unknown as tf.Tensor3D, w, { numHeads: 2 }),
    ).toThrow(/transformerBlock x: expected a float32 tensor \[B, N, D\]/);
  });
});
