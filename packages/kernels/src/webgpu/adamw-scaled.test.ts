import * as tf from "@tensorflow/tfjs";
import { AdamW, type ParamGroupSpec, Rng } from "@sit/core";
import { afterAll, describe, expect, it } from "vitest";
import { DynamicLossScaler, type LossScalerOptions } from "../loss-scaler";
import { FLAT_ADAMW_KERNEL } from "./adamw";
import { webgpuFlatEma } from "./ema";
import { setWebgpuFlatKernels } from "./flat-register";
import { useWebgpu } from "./testing";

// The loss scaler folded into the flat AdamW (unscale, inf/NaN check, skip and scale update on the
// device) against the portable scaler path (unscale with tfjs ops, read found-inf, then the same
// flat AdamW on unscaled gradients), whose semantics loss-scaler.test.ts checks against PyTorch's
// GradScaler.

const SHAPES: [string, number[], number][] = [
  ["blocks.0.w", [7, 5], 0],
  ["blocks.0.b", [5], 1],
  ["blocks.1.w", [7, 5], 0],
  ["pos", [1, 4, 3], 0],
  ["head.w", [300], 0],
  ["norm.g", [9], 1],
];

function model(): { params: tf.Variable[]; groups: ParamGroupSpec[] } {
  const rng = Rng.seed(3);
  const named = SHAPES.map(
    ([n, s]) =>
      [
        n,
        tf.variable(tf.tensor(rng.fillNormal(new Float32Array(tf.util.sizeFromShape(s))), s)),
      ] as [string, tf.Variable],
  );
  const groups: ParamGroupSpec[] = [
    { name: "decay", params: named.filter((_, i) => SHAPES[i][2] === 0), weightDecay: 0.05 },
    { name: "no_decay", params: named.filter((_, i) => SHAPES[i][2] === 1), weightDecay: 0 },
  ];
  return { params: named.map(([, v]) => v), groups };
}

/** Gradients of the scaled loss at step `s` (×`scale`, exact for powers of two); `bad` poisons one. */
function scaledGrads(s: number, scale: number, bad?: number): Record<string, tf.Tensor> {
  const rng = Rng.seed(50 + s);
  return Object.fromEntries(
    SHAPES.map(([n, shape], i) => {
      const x = rng.fillNormal(new Float32Array(tf.util.sizeFromShape(shape)), 0, i % 2 ? 0.05 : 2);
      for (let k = 0; k < x.length; k++) x[k] = Math.fround(x[k] * scale);
      if (i === 4 && bad !== undefined) x[17] = bad;
      return [n, tf.tensor(x, shape)];
    }),
  );
}

interface Run {
  params: Float32Array[];
  moments: Float32Array[];
  scaler: [number, number][];
  steps: number[];
}

/**
 * Steps with the gradients of `plan` (a poison value or undefined per step), the scale the host
 * knows before each step (the fused path decides on the device: the test feeds both the same).
 */
async function run(
  fused: boolean,
  plan: (number | undefined)[],
  clip: { clipPerTensor?: number; clipGlobalNorm?: number },
  options: LossScalerOptions,
): Promise<Run> {
  const { params, groups } = model();
  const opt = new AdamW(groups, { lr: 1e-2, ...clip });
  const scaler = new DynamicLossScaler(options);
  if (fused) scaler.useDevice();
  const out: Run = { params: [], moments: [], scaler: [], steps: [] };
  let before = -1;
  for (let s = 0; s < plan.length; s++) {
    opt.setLr(1e-2 / (s + 1));
    // The scale of this step: the fused path's device value equals the host mirror after sync.
    await scaler.sync();
    const grads = scaledGrads(s, scaler.scale, plan[s]);
    if (fused) scaler.stepOnDevice(opt, grads);
    else await scaler.step(grads, (u) => opt.step(u));
    tf.dispose(Object.values(grads));
    await scaler.sync();
    out.scaler.push([scaler.scale, scaler.growthTracker]);
    out.steps.push(opt.numSteps);
    if (s === 0) before = tf.memory().numTensors;
    else expect(tf.memory().numTensors, `tensors after step ${s}`).toBe(before);
  }
  for (const p of params) out.params.push((await p.data()) as Float32Array);
  const st = opt.state();
  for (const t of Object.values(st.tensors)) out.moments.push((await t.data()) as Float32Array);
  tf.dispose(Object.values(st.tensors));
  await scaler.useHost();
  opt.dispose();
  tf.dispose(params);
  return out;
}

// Bit-identical on lavapipe (worst difference 0); 1e-6 leaves room for a device whose 1/scale or
// fused multiply-adds round differently.
function expectSame(a: Float32Array[], b: Float32Array[], what: string): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => {
    let worst = 0;
    for (let k = 0; k < x.length; k++)
      worst = Math.max(worst, Math.abs(x[k] - b[i][k]) / Math.max(1e-3, Math.abs(b[i][k])));
    expect(worst, `${what} ${i}: worst relative difference`).toBeLessThanOrEqual(1e-6);
  });
}

describe("loss scaler fused into the webgpu flat AdamW", () => {
  setWebgpuFlatKernels(true);
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  const INF = Number.POSITIVE_INFINITY;
  const plan = [undefined, undefined, INF, undefined, Number.NaN, -INF, undefined, undefined];
  for (const [label, clip] of [
    ["per-tensor clipping", { clipPerTensor: 0.5 }],
    ["per-tensor and global-norm clipping", { clipPerTensor: 0.5, clipGlobalNorm: 1 }],
    ["no clipping", {}],
  ] as const) {
    it(`matches the portable scaler path, skips and scale updates included (${label})`, async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const options = { initScale: 1024, growthInterval: 2 };
      const fused = await run(true, plan, clip, options);
      const portable = await run(false, plan, clip, options);
      // Back off ×0.5 on inf, NaN and −inf; grow ×2 after two clean steps; skips do not count.
      expect(portable.scaler).toEqual([
        [1024, 1],
        [2048, 0],
        [1024, 0],
        [1024, 1],
        [512, 0],
        [256, 0],
        [256, 1],
        [512, 0],
      ]);
      expect(portable.steps).toEqual([1, 2, 2, 3, 3, 3, 4, 5]);
      expect(fused.scaler).toEqual(portable.scaler);
      expect(fused.steps).toEqual(portable.steps);
      expectSame(fused.params, portable.params, "parameter");
      expectSame(fused.moments, portable.moments, "moment");
    });
  }

  it("is one tfjs kernel per step, decides without a read, and picks the bias correction of unread skips", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // Three steps launched before any read completes (each read is only started): the first
    // skips, so the next two are Adam's steps 1 and 2, picked on the device.
    const { params, groups } = model();
    const opt = new AdamW(groups, { lr: 1e-2, clipPerTensor: 0.5 });
    const scaler = new DynamicLossScaler({ initScale: 1024 });
    scaler.useDevice();
    // (Synchronously, so that no read can complete in between.)
    const unread: number[] = [];
    for (const [s, scale, bad] of [
      [0, 1024, INF],
      [1, 512, undefined],
      [2, 512, undefined],
    ] as const) {
      const grads = scaledGrads(s, scale, bad);
      unread.push(scaler.deviceArgs().unresolved);
      scaler.stepOnDevice(opt, grads);
      tf.dispose(Object.values(grads));
    }
    expect(unread).toEqual([0, 1, 2]);
    expect(opt.numSteps).toBe(3);
    await scaler.sync();
    expect([opt.numSteps, scaler.scale, scaler.growthTracker]).toEqual([2, 512, 2]);
    const fusedParams = await Promise.all(params.map((p) => p.data()));
    // The same two clean steps on a fresh model with the portable path.
    const ref = model();
    const refOpt = new AdamW(ref.groups, { lr: 1e-2, clipPerTensor: 0.5 });
    const host = new DynamicLossScaler({ initScale: 512 });
    for (const s of [1, 2]) {
      const grads = scaledGrads(s, 512);
      await host.step(grads, (u) => refOpt.step(u));
      tf.dispose(Object.values(grads));
    }
    const refParams = await Promise.all(ref.params.map((p) => p.data()));
    expectSame(fusedParams as Float32Array[], refParams as Float32Array[], "parameter");
    // One tfjs kernel per step, the scaler's included.
    const grads = scaledGrads(3, 512);
    const profile = await tf.profile(() => scaler.stepOnDevice(opt, grads));
    expect(profile.kernels.map((k) => k.name)).toEqual([FLAT_ADAMW_KERNEL]);
    tf.dispose(Object.values(grads));
    await scaler.useHost();
    opt.dispose();
    refOpt.dispose();
    tf.dispose([...params, ...ref.params]);
  });

  it("the EMA kernel leaves the teacher as it is when the device's found-inf flag is set", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // Unshared teacher tensors: each call updates them in place (returns nulls).
    const teacherOf = () => [tf.tensor1d([1, 2, 3]), tf.tensor2d([[4, 5]])];
    const [skipped, applied, plain] = [teacherOf(), teacherOf(), teacherOf()];
    const student = [tf.tensor1d([0, 0, 0]), tf.tensor2d([[1, 1]])];
    const flags = tf.tensor1d([0, 0, 1, 0]);
    const clear = tf.tensor1d([0, 0, 0, 0]);
    for (const [teacher, skip] of [
      [skipped, { tensor: flags, index: 2 }],
      [applied, { tensor: clear, index: 2 }],
      [plain, undefined],
    ] as const)
      expect(webgpuFlatEma(teacher, student, 0.5, skip)).toEqual([null, null]);
    const before = teacherOf();
    for (let i = 0; i < 2; i++) {
      expect(Array.from(await skipped[i].data())).toEqual(Array.from(await before[i].data()));
      expect(Array.from(await applied[i].data())).toEqual(Array.from(await plain[i].data()));
    }
    expect(Array.from(await plain[1].data())).toEqual([2.5, 3]);
    tf.dispose([...skipped, ...applied, ...plain, ...before, ...student, flags, clear]);
  });

  it("checkpoints the device state exactly and refuses to save with reads pending", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const { params, groups } = model();
    const opt = new AdamW(groups, { lr: 1e-2 });
    const scaler = new DynamicLossScaler({ initScale: 64, growthInterval: 3 });
    scaler.useDevice();
    const grads = scaledGrads(0, 64);
    scaler.stepOnDevice(opt, grads);
    expect(() => scaler.state()).toThrow(/1 step\(s\) not read back yet; await sync\(\) first/);
    await scaler.sync();
    const saved = scaler.state();
    expect([saved.scale, saved.growthTracker]).toEqual([64, 1]);
    const resumed = new DynamicLossScaler();
    resumed.useDevice();
    resumed.loadState(saved);
    const more = scaledGrads(1, 64, INF);
    resumed.stepOnDevice(opt, more);
    await resumed.sync();
    expect(resumed.state()).toMatchObject({ scale: 32, growthTracker: 0, growthInterval: 3 });
    expect(opt.numSteps).toBe(1);
    tf.dispose([...Object.values(grads), ...Object.values(more), ...params]);
    await Promise.all([scaler.useHost(), resumed.useHost()]);
    opt.dispose();
  });
});
