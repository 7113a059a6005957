import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { setWebgpuFusedHeads } from "@sit/kernels";
import { expectClose, useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { mocoV3Loss, sitContrastiveLoss, sitContrastiveLossOfViews } from "./moco-v3";

afterAll(async () => {
  setWebgpuFusedHeads(true);
  await tf.setBackend("cpu");
});

function fill(shape: [number, number], seed: number): tf.Tensor2D {
  const n = shape[0] * shape[1];
  return tf.tensor2d(Rng.seed(seed).fillNormal(new Float32Array(n), 0, 1), shape);
}

/** Loss, then the gradients of s1, s2, t1, t2 (one pair: of q and k). */
function run(pairs: 1 | 2, [b, d]: [number, number]): tf.Tensor[] {
  const xs = [1, 2, 3, 4].slice(0, 2 * pairs).map((i) => fill([b, d], i * 10 + b));
  const out = tf.tidy(() => {
    const f = (...a: tf.Tensor[]) =>
      pairs === 2
        ? sitContrastiveLoss(a[0], a[1], a[2], a[3], { temperature: 0.2 })
        : mocoV3Loss(a[0], a[1], { temperature: 0.1 });
    const { value, grads } = tf.valueAndGrads(f)(xs);
    return [value, ...grads];
  });
  tf.dispose(xs);
  return out;
}

async function compare(pairs: 1 | 2, shape: [number, number]) {
  setWebgpuFusedHeads(false);
  const portable = run(pairs, shape);
  setWebgpuFusedHeads(true);
  const fused = run(pairs, shape);
  const [p, f] = await Promise.all(
    [portable, fused].map((ts) => Promise.all(ts.map((t) => t.data() as Promise<Float32Array>))),
  );
  tf.dispose([...portable, ...fused]);
  expectClose(f[0], p[0], 1e-5, "loss", 1e-6);
  const names = pairs === 2 ? ["s1", "s2", "t1", "t2"] : ["q", "k"];
  for (let i = 1; i < f.length; i++) expectClose(f[i], p[i], 1e-4, `grad ${names[i - 1]}`, 1e-6);
  // The teacher's keys are detached on both paths.
  for (let i = 1 + pairs; i < f.length; i++) expect(Math.max(...f[i].map(Math.abs))).toBe(0);
}

/** Loss and the gradients of s, t for both views stacked (`[2B, D]`). */
function runViews([b, d]: [number, number]): tf.Tensor[] {
  const xs = [1, 2].map((i) => fill([2 * b, d], i * 10 + b));
  const out = tf.tidy(() => {
    const f = (s: tf.Tensor, t: tf.Tensor) => sitContrastiveLossOfViews(s, t, { temperature: 0.2 });
    const { value, grads } = tf.valueAndGrads(f)(xs);
    return [value, ...grads];
  });
  tf.dispose(xs);
  return out;
}

describe("the MoCo-v3 loss on webgpu (fused kernel behind @sit/core's seam)", () => {
  it.for([
    ["SiT's two pairs, B 5, D 70", 2, [5, 70]],
    ["SiT's two pairs, B 70 (more keys than threads), D 9", 2, [70, 9]],
    ["one pair, B 6, D 33", 1, [6, 33]],
  ] as const)(
    "matches the portable loss: value 1e-5, gradients 1e-4 (%s)",
    { timeout: 240_000 },
    async ([, pairs, shape], ctx) => {
      if (!(await useWebgpu(ctx))) return;
      await compare(pairs, [shape[0], shape[1]]);
    },
  );

  it.for([
    ["B 4, D 64: each view a range of the stacked buffers", [4, 64], ["SitContrastiveLossViews"]],
    ["B 5, D 70: views off the binding alignment, cut apart", [5, 70], ["SitContrastiveLoss"]],
  ] as const)(
    "of both views stacked matches the portable loss: value 1e-5, gradients 1e-4 (%s)",
    { timeout: 240_000 },
    async ([, shape, kernels], ctx) => {
      if (!(await useWebgpu(ctx))) return;
      setWebgpuFusedHeads(false);
      const portable = runViews([shape[0], shape[1]]);
      setWebgpuFusedHeads(true);
      const info = await tf.profile(() => {
        tf.dispose(runViews([shape[0], shape[1]]));
      });
      expect(info.kernels.map((k) => k.name).filter((k) => k.startsWith("Sit"))).toEqual([
        ...kernels,
        "SitContrastiveLossGrad",
      ]);
      const fused = runViews([shape[0], shape[1]]);
      const [p, f] = await Promise.all(
        [portable, fused].map((ts) =>
          Promise.all(ts.map((t) => t.data() as Promise<Float32Array>)),
        ),
      );
      tf.dispose([...portable, ...fused]);
      expectClose(f[0], p[0], 1e-5, "loss", 1e-6);
      expectClose(f[1], p[1], 1e-4, "grad s", 1e-6);
      expect(Math.max(...f[2].map(Math.abs)), "no gradient into t").toBe(0);
      // No leak across calls.
      const settled = async () => {
        const l = runViews([shape[0], shape[1]]);
        await l[0].data();
        tf.dispose(l);
        return tf.memory().numTensors;
      };
      const before = await settled();
      for (let i = 0; i < 3; i++) tf.dispose(runViews([shape[0], shape[1]]));
      expect(await settled()).toBe(before);
    },
  );

  it("takes one tensor as both queries and keys (read-only bindings may alias)", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const x = fill([6, 20], 3);
    const both = () =>
      tf.tidy(() => {
        const { value, grads } = tf.valueAndGrads((a: tf.Tensor) => mocoV3Loss(a, a))([x]);
        return [value, grads[0]];
      });
    setWebgpuFusedHeads(false);
    const portable = both();
    setWebgpuFusedHeads(true);
    const fused = both();
    const [p, f] = await Promise.all(
      [portable, fused].map((ts) => Promise.all(ts.map((t) => t.data() as Promise<Float32Array>))),
    );
    expectClose(f[0], p[0], 1e-5, "loss", 1e-6);
    expectClose(f[1], p[1], 1e-4, "grad", 1e-6);
    tf.dispose([...portable, ...fused, x]);
  });

  it("is one tfjs kernel each way and leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const info = await tf.profile(() => {
      tf.dispose(run(2, [4, 16]));
    });
    expect(info.kernels.map((k) => k.name).filter((k) => k.startsWith("Sit"))).toEqual([
      "SitContrastiveLoss",
      "SitContrastiveLossGrad",
    ]);
    const settled = async () => {
      const l = run(2, [4, 16]);
      await l[0].data();
      tf.dispose(l);
      return tf.memory().numTensors;
    };
    const before = await settled();
    for (let i = 0; i < 3; i++) tf.dispose(run(2, [4, 16]));
    expect(await settled()).toBe(before);
  });
});
