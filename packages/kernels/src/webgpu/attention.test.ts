import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { portableMultiHeadAttention, portablePackedSelfAttention } from "../attention";
import type { ResolvedAttentionOptions } from "../registry";
import { attentionPass, webgpuMultiHeadAttention, webgpuPackedSelfAttention } from "./attention";
import { countLaunches, fill, onCpu, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

const opts = (numHeads: number, hd: number): ResolvedAttentionOptions => ({
  numHeads,
  scale: hd ** -0.5,
  returnProbabilities: false,
});

type Packed = typeof portablePackedSelfAttention;
const lossGrad = (f: Packed, w: tf.Tensor, o: ResolvedAttentionOptions) =>
  tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor3D, o).output, w)));

describe("webgpu fused attention", () => {
  // Odd token counts (tiles of 32 rows, key tiles of 32 at hd 64), hd 64 and others.
  for (const [b, n, h, hd] of [
    [2, 5, 2, 8],
    [1, 17, 3, 64],
    [2, 65, 2, 16],
    [1, 33, 1, 40],
    // Head sizes the vec4 passes do not take (not a multiple of 4; above 64): the general passes.
    [2, 9, 2, 6],
    [1, 33, 1, 72],
  ] as const) {
    it(`matches the portable output and dQKV on the cpu backend (B=${b}, N=${n}, H=${h}, hd=${hd})`, async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const d = h * hd;
      const o = opts(h, hd);
      const make = () => [fill([b, n, 3 * d], 1, 1.5), fill([b, n, d], 2)];
      const reference = await onCpu(() => {
        const [qkv, w] = make();
        return [
          portablePackedSelfAttention(qkv as tf.Tensor3D, o).output,
          lossGrad(portablePackedSelfAttention, w, o)(qkv),
        ];
      });
      const [qkv, w] = make();
      const y = webgpuPackedSelfAttention(qkv as tf.Tensor3D, o).output;
      const g = lossGrad(webgpuPackedSelfAttention, w, o)(qkv);
      expectClose(await y.data(), reference[0], 1e-4, "output");
      expectClose(await g.data(), reference[1], 1e-4, "dqkv");
      tf.dispose([qkv, w, y, g]);
    });
  }

  it("takes the vec4 passes for head sizes that are multiples of 4 up to 64, else the general ones", () => {
    for (const hd of [4, 8, 40, 64]) expect(attentionPass("dkdv", hd).vec4).toBe(true);
    for (const hd of [6, 66, 72, 128]) expect(attentionPass("fwd", hd).vec4).toBe(false);
    expect(attentionPass("dkdv", 64).threads).toBe(64);
    expect(attentionPass("statsDq", 64).threads).toBe(32);
  });

  it("routes multiHeadAttention (Nq = Nk) through the fused kernel with matching gradients", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const o = opts(2, 8);
    const make = () => [fill([2, 9, 16], 3), fill([2, 9, 16], 4), fill([2, 9, 16], 5)];
    const run = (f: typeof portableMultiHeadAttention) => {
      const [q, k, v] = make();
      const fn = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.square(f(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, o).output));
      return tf.grads(fn)([q, k, v]);
    };
    const reference = await onCpu(() => run(portableMultiHeadAttention));
    const got = run(webgpuMultiHeadAttention);
    for (const [i, label] of ["dq", "dk", "dv"].entries())
      expectClose(await got[i].data(), reference[i], 1e-4, label);
    tf.dispose(got);
  });

  it("falls back to the portable code for attention maps", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const qkv = fill([1, 6, 24], 6) as tf.Tensor3D;
    const r = webgpuPackedSelfAttention(qkv, { ...opts(2, 4), returnProbabilities: true });
    expect(r.probabilities?.shape).toEqual([1, 2, 6, 6]);
    const rowSums = await tf.sum(r.probabilities!, -1).data();
    for (const s of rowSums) expect(s).toBeCloseTo(1, 5);
    tf.dispose([qkv, r.output, r.probabilities!]);
  });

  it("takes one dispatch forward and three backward, two tfjs kernels, and leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const o = opts(3, 64);
    const [qkv, dy] = [fill([2, 65, 576], 7), fill([2, 65, 192], 8)];
    const f = tf.grads((x: tf.Tensor) => webgpuPackedSelfAttention(x as tf.Tensor3D, o).output);
    const launches = await countLaunches(() => f([qkv], dy));
    // Every GPU dispatch counted (the others in the profile are tfjs's Identity bookkeeping).
    expect(launches.dispatches).toBe(4);
    expect(launches.kernels.filter((k) => k !== "Identity")).toEqual([
      "SitPackedAttention",
      "SitPackedAttentionGrad",
    ]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(f([qkv], dy));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([qkv, dy]);
  });
});
