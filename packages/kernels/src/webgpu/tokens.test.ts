import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { countLaunches, fill, onCpu, useWebgpu } from "./testing";
import { webgpuTokenOps } from "./tokens";

afterAll(async () => {
  await tf.setBackend("cpu");
});

const [B, N, D] = [3, 5, 70];

/** Inputs: patches, cls, pos, and the weights of the two outputs' loss terms. */
const inputs = () => [
  fill([B, N, D], 1),
  fill([1, 1, D], 2),
  fill([1, 1 + N, D], 3),
  fill([B, D], 4),
  fill([B, N, D], 5),
];

/**
 * tokens = embed(patches, cls, pos); (c, p) = split(tokens); value Σ c·wc + Σ p·wp and its
 * gradients in patches, cls and pos: both ops and both directions of each.
 */
function step(
  embed: (p: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => tf.Tensor,
  split: (t: tf.Tensor) => [tf.Tensor, tf.Tensor],
  [p, c, e, wc, wp]: tf.Tensor[],
): tf.Tensor[] {
  const f = (pi: tf.Tensor, ci: tf.Tensor, ei: tf.Tensor) => {
    const [cls, patchTokens] = split(embed(pi, ci, ei));
    return tf.add(tf.sum(tf.mul(cls, wc)), tf.sum(tf.mul(patchTokens, wp))) as tf.Scalar;
  };
  const { value, grads } = tf.valueAndGrads(f)([p, c, e]);
  return [value, ...grads];
}

// The composed tfjs ops, as the portable token ops compute them.
const composedEmbed = (p: tf.Tensor, c: tf.Tensor, e: tf.Tensor) =>
  tf.add(tf.concat([tf.add(tf.zeros([B, 1, D]), c), p], 1), e);
const composedSplit = (t: tf.Tensor): [tf.Tensor, tf.Tensor] => [
  tf.reshape(tf.slice(t, [0, 0, 0], [B, 1, D]), [B, D]),
  tf.slice(t, [0, 1, 0], [B, N, D]),
];

describe("webgpu token kernels (SitEmbedTokens, SitSplitTokens)", () => {
  it("match the composed ops on the cpu backend, forward and every gradient, and leak nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const reference = await onCpu(() => step(composedEmbed, composedSplit, inputs()));
    const ops = webgpuTokenOps();
    expect(ops).not.toBeNull();
    const embed = (p: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => ops!.embed(p as tf.Tensor3D, c, e);
    const split = (t: tf.Tensor): [tf.Tensor, tf.Tensor] => {
      const r = ops!.split(t as tf.Tensor3D);
      return [r.cls, r.patchTokens];
    };
    const xs = inputs();
    const run = () => tf.tidy(() => step(embed, split, xs));
    const got = run();
    expect(got.map((t) => t.shape)).toEqual([[], [B, N, D], [1, 1, D], [1, 1 + N, D]]);
    const values = await Promise.all(got.map((t) => t.data() as Promise<Float32Array>));
    expectClose(values[0], reference[0], 1e-5, "value");
    for (const [i, name] of ["patches", "cls", "pos"].entries())
      expectClose(values[i + 1], reference[i + 1], 1e-5, `grad ${name}`);
    tf.dispose(got);
    // One kernel each way per op, one dispatch each.
    const launches = await countLaunches(() => {
      const [cls, patchTokens] = split(embed(xs[0], xs[1], xs[2]));
      return [cls, patchTokens];
    });
    expect(launches.kernels).toEqual(["SitEmbedTokens", "SitSplitTokens"]);
    expect(launches.dispatches).toBe(2);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(run());
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(xs);
  });

  it("give the patch tokens a zero gradient where only the CLS token is used", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const ops = webgpuTokenOps()!;
    const xs = inputs();
    const g = tf.tidy(() =>
      tf.grad((t: tf.Tensor) => tf.sum(tf.mul(ops.split(t as tf.Tensor3D).cls, xs[3])))(
        ops.embed(xs[0] as tf.Tensor3D, xs[1], xs[2]),
      ),
    );
    const v = (await g.data()) as Float32Array;
    const wc = (await xs[3].data()) as Float32Array;
    for (let b = 0; b < B; b++)
      for (let t = 0; t <= N; t++)
        for (let d = 0; d < D; d++)
          expect(v[(b * (N + 1) + t) * D + d]).toBe(t === 0 ? wc[b * D + d] : 0);
    tf.dispose([g, ...xs]);
  });
});
