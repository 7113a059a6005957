import * as tf from "@tensorflow/tfjs";
import { AdamW, type ParamGroupSpec, Rng } from "@sit/core";
import { expectClose, loadFixture } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { FLAT_ADAMW_KERNEL } from "./adamw";
import { setWebgpuFlatKernels } from "./flat-register";
import { countBindGroups, useWebgpu } from "./testing";

const FIXTURE_NAMES = ["w", "bias", "pos"];

// A small model with many tensors of mixed sizes (ties included) in two groups with different
// learning-rate scales and weight decays.
const SHAPES: [string, number[], number][] = [
  ["blocks.0.w", [7, 5], 0],
  ["blocks.0.b", [5], 1],
  ["blocks.1.w", [7, 5], 0],
  ["blocks.1.b", [5], 1],
  ["pos", [1, 4, 3], 0],
  ["head.w", [300], 0],
  ["norm.g", [9], 1],
];

function buildModel(backend: string): {
  params: [string, tf.Variable][];
  groups: ParamGroupSpec[];
} {
  const rng = Rng.seed(11);
  const params = SHAPES.map(([n, s]) => {
    const size = s.reduce((a, b) => a * b, 1);
    return [n, tf.variable(tf.tensor(rng.fillNormal(new Float32Array(size), 0, 1), s))] as [
      string,
      tf.Variable,
    ];
  });
  const groups: ParamGroupSpec[] = [
    { name: "decay", params: params.filter((_, i) => SHAPES[i][2] === 0), weightDecay: 0.05 },
    {
      name: "no_decay",
      params: params.filter((_, i) => SHAPES[i][2] === 1),
      weightDecay: 0,
      lrScale: 0.5,
    },
  ];
  void backend;
  return { params, groups };
}

/** Gradients of step `s` (the same numbers on every backend); some large enough to be clipped. */
function gradients(s: number): Record<string, tf.Tensor> {
  const rng = Rng.seed(100 + s);
  return Object.fromEntries(
    SHAPES.map(([n, shape], i) => {
      const size = shape.reduce((a, b) => a * b, 1);
      return [
        n,
        tf.tensor(rng.fillNormal(new Float32Array(size), 0, i % 2 === 0 ? 2 : 0.05), shape),
      ];
    }),
  );
}

async function runModel(
  backend: string,
  clip: { clipPerTensor?: number; clipGlobalNorm?: number },
  implementation: "host" | "device",
): Promise<{ params: Record<string, Float32Array>; moments: Record<string, Float32Array> }> {
  await tf.setBackend(backend);
  const { params, groups } = buildModel(backend);
  const opt = new AdamW(groups, { lr: 1e-2, ...clip, implementation });
  for (let s = 1; s <= 3; s++) {
    opt.setLr(1e-2 / s).setWeightDecay(0.05 + 0.01 * s, "decay");
    const grads = gradients(s);
    opt.step(grads);
    tf.dispose(Object.values(grads));
  }
  const out: Record<string, Float32Array> = {};
  for (const [n, v] of params) out[n] = (await v.data()) as Float32Array;
  const state = opt.state();
  const moments: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(state.tensors)) moments[k] = (await t.data()) as Float32Array;
  tf.dispose(Object.values(state.tensors));
  opt.dispose();
  tf.dispose(params.map(([, v]) => v));
  return { params: out, moments };
}

describe("webgpu flat AdamW (SitFlatAdamW)", () => {
  afterAll(async () => {
    setWebgpuFlatKernels(true);
    await tf.setBackend("cpu");
  });

  it("matches adamw.safetensors over all steps in one tfjs kernel per step, without leaks", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const { tensors, metadata } = loadFixture("adamw.safetensors");
    const lr = metadata.lr as number[];
    const wd = metadata.wd_group0 as number[];
    const params: [string, tf.Variable][] = FIXTURE_NAMES.map((n) => [
      n,
      tf.variable(tensors[`init.${n}`].clone()),
    ]);
    const opt = new AdamW(params, { lr: lr[0], weightDecay: wd[0], clipPerTensor: 3 });
    expect(opt.mode()).toBe("device");
    let before = -1;
    for (let s = 1; s <= 3; s++) {
      opt.setLr(lr[s - 1]).setWeightDecay(wd[s - 1]);
      const grads = Object.fromEntries(
        FIXTURE_NAMES.map((n) => [n, tensors[`grad.step${s}.${n}`]]),
      );
      const profile = await tf.profile(() => opt.step(grads));
      expect(profile.kernels.map((k) => k.name)).toEqual([FLAT_ADAMW_KERNEL]);
      for (const [n, v] of params)
        expectClose(
          await v.data(),
          await tensors[`param.step${s}.${n}`].data(),
          1e-5,
          `step ${s} ${n}`,
        );
      if (s === 1) before = tf.memory().numTensors;
      else expect(tf.memory().numTensors).toBe(before);
    }
    opt.dispose();
    tf.dispose([...params.map(([, v]) => v), ...Object.values(tensors)]);
  });

  for (const [label, clip] of [
    ["per-tensor clipping", { clipPerTensor: 0.5 }],
    ["per-tensor and global-norm clipping", { clipPerTensor: 0.5, clipGlobalNorm: 1 }],
    ["no clipping", {}],
  ] as const) {
    it(`matches the host path on a multi-tensor model in two groups (${label})`, async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const gpu = await runModel("webgpu", clip, "device");
      const host = await runModel("cpu", clip, "host");
      for (const n of Object.keys(host.params)) expectClose(gpu.params[n], host.params[n], 1e-5, n);
      for (const k of Object.keys(host.moments))
        expectClose(gpu.moments[k], host.moments[k], 1e-5, k);
    });
  }

  it("keeps its bind groups from step to step while the learning rate and the step change", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const { params, groups } = buildModel("webgpu");
    const opt = new AdamW(groups, { lr: 1e-2, clipPerTensor: 0.5, clipGlobalNorm: 1 });
    expect(opt.mode()).toBe("device");
    const made: number[] = [];
    for (let s = 1; s <= 3; s++) {
      opt.setLr(1e-2 / s);
      const grads = gradients(s);
      const [count] = await countBindGroups(() => opt.step(grads));
      made.push(count);
      tf.dispose(Object.values(grads));
      // A read submits the step's commands: tfjs's pool then hands its temporaries back.
      await params[0][1].data();
    }
    // Three dispatches a step (sums of squares, global norm, update), whose bind groups are made
    // at the first step (or kept from an earlier test's) and bound again after that, with new
    // values in the same buffers. (With the step's √(1 − β₂ᵗ) in the uniforms, the update made
    // one every step.)
    expect(made.slice(1)).toEqual([0, 0]);
    opt.dispose();
    tf.dispose(params.map(([, v]) => v));
  });

  it("hands its moments over when unplugged (state, loadState and the tfjs-op path agree)", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const clip = { clipPerTensor: 0.5 };
    const host = await runModel("cpu", clip, "host");
    await tf.setBackend("webgpu");
    const { params, groups } = buildModel("webgpu");
    const opt = new AdamW(groups, { lr: 1e-2, ...clip });
    for (let s = 1; s <= 3; s++) {
      // Step 1 fused, step 2 on the portable tfjs-op chain, step 3 fused again after a
      // state() → loadState() round trip.
      setWebgpuFlatKernels(s !== 2);
      if (s === 3) {
        const state = opt.state();
        opt.loadState(state);
        tf.dispose(Object.values(state.tensors));
      }
      opt.setLr(1e-2 / s).setWeightDecay(0.05 + 0.01 * s, "decay");
      const grads = gradients(s);
      opt.step(grads);
      tf.dispose(Object.values(grads));
    }
    setWebgpuFlatKernels(true);
    for (const [n, v] of params) expectClose(await v.data(), host.params[n], 1e-5, n);
    opt.dispose();
    tf.dispose(params.map(([, v]) => v));
  });

  it("updates a parameter no other tensor shares in its own buffer, step after step", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const w = tf.variable(tf.tensor1d([1, 2, 3, 4]));
    const opt = new AdamW([{ params: [["w", w]], weightDecay: 0 }], { lr: 0.1 });
    const g = tf.tensor1d([1, -1, 1, -1]);
    // The first step may assign a fresh buffer (tf.variable shares its initial value's data);
    // from then on, the same one.
    opt.step({ w: g });
    const id = w.dataId;
    opt.step({ w: g });
    opt.step({ w: g });
    expect(w.dataId).toBe(id);
    // Adam's first steps move each weight by ≈ lr against its gradient's sign.
    expectClose(await w.data(), new Float32Array([0.7, 2.3, 2.7, 4.3]), 1e-4, "w");
    opt.dispose();
    tf.dispose([w, g]);
  });

  it("leaves other tensors that share a parameter's data untouched", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const w = tf.variable(tf.tensor1d([1, 2, 3, 4]));
    const alias = tf.variable(tf.zeros([4]));
    alias.assign(w); // shares w's data, as an EMA teacher does right after construction
    const opt = new AdamW([{ params: [["w", w]], weightDecay: 0 }], { lr: 0.1 });
    const g = tf.tensor1d([1, -1, 1, -1]);
    opt.step({ w: g });
    expect(Array.from(await alias.data())).toEqual([1, 2, 3, 4]);
    expectClose(await w.data(), new Float32Array([0.9, 2.1, 2.9, 4.1]), 1e-6, "w");
    opt.dispose();
    tf.dispose([w, alias, g]);
  });
});
