import * as tf from "@tensorflow/tfjs";
import { TEST_BACKENDS, expectClose, loadFixture, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { ConfigError, ShapeError } from "../errors";
import { AdamW } from "./adamw";

const NAMES = ["w", "bias", "pos"];

function fixtureRun() {
  const { tensors, metadata } = loadFixture("adamw.safetensors");
  const lr = metadata.lr as number[];
  const wd = metadata.wd_group0 as number[];
  return { tensors, lr, wd };
}

describe("AdamW", () => {
  for (const backend of TEST_BACKENDS)
    for (const implementation of ["host", "device"] as const) {
      it(`matches PyTorch AdamW over adamw.safetensors' three steps with per-tensor clipping (${backend}, ${implementation})`, async () => {
        await withBackend(backend, async () => {
          const { tensors, lr, wd } = fixtureRun();
          const params: [string, tf.Variable][] = NAMES.map((n) => [
            n,
            tf.variable(tensors[`init.${n}`].clone()),
          ]);
          const opt = new AdamW(params, {
            lr: lr[0],
            weightDecay: wd[0],
            clipPerTensor: 3,
            implementation,
          });
          expect(opt.mode()).toBe(implementation);
          // Groups as in the fixture: w and pos decayed, the 1-D bias not.
          expect(opt.groups.map((g) => [g.name, g.params.sort()])).toEqual([
            ["decay", ["pos", "w"]],
            ["no_decay", ["bias"]],
          ]);
          let clipped = 0;
          for (let s = 1; s <= 3; s++) {
            opt.setLr(lr[s - 1]).setWeightDecay(wd[s - 1]);
            expect(opt.groups[1].weightDecay).toBe(0);
            const grads = Object.fromEntries(NAMES.map((n) => [n, tensors[`grad.step${s}.${n}`]]));
            for (const g of Object.values(grads)) if (tf.norm(g).dataSync()[0] > 3) clipped++;
            opt.step(grads);
            for (const [n, v] of params)
              expectClose(
                await v.data(),
                await tensors[`param.step${s}.${n}`].data(),
                1e-6,
                `step ${s} ${n}`,
              );
          }
          // The fixture exercises the clipping branch.
          expect(clipped).toBeGreaterThan(0);
          opt.dispose();
          tf.dispose([...params.map(([, v]) => v), ...Object.values(tensors)]);
        });
      });
    }

  for (const implementation of ["host", "device"] as const)
    it(`reproduces the student update of sit_step.safetensors (clip 3, AdamW, two groups; ${implementation})`, async () => {
      const { tensors, metadata } = loadFixture("sit_step.safetensors");
      const hyper = metadata.hyper as {
        lr: number;
        wd: number;
        clip: number;
        betas: [number, number];
        eps: number;
      };
      // The update is element-wise and per-tensor norms do not depend on layout, so PyTorch's
      // layouts can be optimised as they are.
      const names = Object.keys(tensors)
        .filter((k) => k.startsWith("student."))
        .map((k) => k.slice("student.".length));
      const params: [string, tf.Variable][] = names.map((n) => [
        n,
        tf.variable(tensors[`student.${n}`].clone()),
      ]);
      const opt = new AdamW(params, {
        lr: hyper.lr,
        weightDecay: hyper.wd,
        betas: hyper.betas,
        eps: hyper.eps,
        clipPerTensor: hyper.clip,
        implementation,
      });
      const clipped = names.filter((n) => tf.norm(tensors[`grad.${n}`]).dataSync()[0] > hyper.clip);
      expect(clipped.length).toBeGreaterThan(0);
      opt.step(Object.fromEntries(names.map((n) => [n, tensors[`grad.${n}`]])));
      for (const [n, v] of params)
        expectClose(await v.data(), await tensors[`after.student.${n}`].data(), 1e-6, n);
      opt.dispose();
      tf.dispose([...params.map(([, v]) => v), ...Object.values(tensors)]);
    });

  it("a gradient whose norm overflows float32 is zeroed, as in PyTorch, on both paths", () => {
    const run = (implementation: "host" | "device") => {
      const a = tf.variable(tf.ones([2, 2]));
      const b = tf.variable(tf.ones([3, 1]));
      const opt = new AdamW(
        [
          ["a", a],
          ["b", b],
        ],
        { lr: 0.1, weightDecay: 0, clipPerTensor: 3, clipGlobalNorm: 1, implementation },
      );
      opt.step({ a: tf.fill([2, 2], 1e20), b: tf.fill([3, 1], 2) });
      const st = opt.state();
      const out = {
        a: Array.from(st.tensors["exp_avg.a"].dataSync()),
        b: Array.from(st.tensors["exp_avg.b"].dataSync()),
      };
      tf.dispose([a, b, ...Object.values(st.tensors)]);
      opt.dispose();
      return out;
    };
    for (const implementation of ["host", "device"] as const) {
      const m = run(implementation);
      expect(m.a, implementation).toEqual([0, 0, 0, 0]);
      // b: ‖b‖ = 2√3 > 3 → scaled to norm ≈ 3, then the global norm 1 scales it to ≈ 1.
      const expected = 0.1 * (2 * (3 / (2 * Math.sqrt(3) + 1e-6))) * (1 / (3 + 1e-6));
      for (const v of m.b) expect(v).toBeCloseTo(expected, 6);
    }
  });

  it("uses the host path on cpu and wasm by default", () => {
    const w = tf.variable(tf.ones([2, 2]));
    const opt = new AdamW([["w", w]], { lr: 0.1 });
    expect(opt.mode()).toBe("host");
    opt.dispose();
    w.dispose();
  });

  it("resumes from state(): a restored optimiser continues exactly like the original (host state into device)", () => {
    const { tensors, lr, wd } = fixtureRun();
    const make = () =>
      NAMES.map((n) => [n, tf.variable(tensors[`init.${n}`].clone())] as [string, tf.Variable]);
    const grads = (s: number) =>
      Object.fromEntries(NAMES.map((n) => [n, tensors[`grad.step${s}.${n}`]]));
    const a = make();
    const optA = new AdamW(a, { lr: lr[0], weightDecay: wd[0], clipPerTensor: 3 });
    optA.step(grads(1));
    const saved = optA.state();
    expect(saved.step).toBe(1);
    expect(Object.keys(saved.tensors).sort()).toEqual(
      NAMES.flatMap((n) => [`exp_avg.${n}`, `exp_avg_sq.${n}`]).sort(),
    );
    expect(saved.tensors["exp_avg.pos"].shape).toEqual([1, 3, 6]);
    const b = make();
    for (const [i, [, v]] of b.entries()) v.assign(a[i][1]);
    const optB = new AdamW(b, {
      lr: 1,
      weightDecay: 0,
      clipPerTensor: 3,
      implementation: "device",
    });
    optB.loadState(saved);
    expect(optB.groups[0].lr).toBe(lr[0]);
    for (const o of [optA, optB]) o.setLr(lr[1]).setWeightDecay(wd[1]).step(grads(2));
    // Host (float64 arithmetic, rounded) and device (float32 kernels) agree to float32 precision.
    for (const [i, [n, v]] of b.entries()) expectClose(v, a[i][1], 1e-6, `resumed ${n}`);
    // And both match PyTorch's second step.
    for (const [n, v] of b) expectClose(v, tensors[`param.step2.${n}`], 1e-6, n);
    tf.dispose([...Object.values(saved.tensors), ...a.map(([, v]) => v), ...b.map(([, v]) => v)]);
    optA.dispose();
    optB.dispose();
  });

  for (const implementation of ["host", "device"] as const)
    it(`global-norm clipping scales every gradient by max_norm / (total norm + 1e-6) (${implementation})`, () => {
      const w = tf.variable(tf.zeros([2, 2]));
      const bias = tf.variable(tf.zeros([2]));
      // After one step the first moment is (1 − β1)·(clipped gradient): read the clipping from it.
      const opt = new AdamW(
        [
          ["w", w],
          ["b", bias],
        ],
        { lr: 0, clipGlobalNorm: 1, implementation },
      );
      const gw = tf.tensor2d([
        [3, 0],
        [0, 4],
      ]);
      const gb = tf.tensor1d([0, 12]);
      opt.step({ w: gw, b: gb });
      const total = Math.sqrt(9 + 16 + 144);
      const coef = 1 / (total + 1e-6);
      const st = opt.state();
      expectClose(
        st.tensors["exp_avg.w"],
        [0.3, 0, 0, 0.4].map((x) => x * coef),
        1e-6,
        "m(w)",
      );
      expectClose(
        st.tensors["exp_avg.b"],
        [0, 1.2].map((x) => x * coef),
        1e-6,
        "m(b)",
      );
      tf.dispose([w, bias, gw, gb, ...Object.values(st.tensors)]);
      opt.dispose();
    });

  it("device path: a fixed number of kernels per step, two more per extra matrix parameter", async () => {
    const kernels = async (nMatrices: number) => {
      const params: [string, tf.Variable][] = [];
      for (let i = 0; i < nMatrices; i++) {
        params.push([`blocks.${i}.weight`, tf.variable(tf.ones([4, 3]))]);
        params.push([`blocks.${i}.bias`, tf.variable(tf.ones([3]))]);
      }
      const grads = Object.fromEntries(params.map(([n, v]) => [n, tf.onesLike(v)]));
      const opt = new AdamW(params, {
        lr: 1e-3,
        clipPerTensor: 1,
        clipGlobalNorm: 5,
        implementation: "device",
      });
      // tf.profile reuses its result object: read the count before the next profile.
      const count = (await tf.profile(() => opt.step(grads))).kernels.length;
      opt.dispose();
      tf.dispose([...params.map(([, v]) => v), ...Object.values(grads)]);
      return count;
    };
    const k10 = await kernels(10);
    const k40 = await kernels(40);
    // 30 extra matrices and 30 extra biases: at most 2 launches per extra matrix, none per bias.
    expect(k40 - k10).toBeLessThanOrEqual(60);
    expect(k10).toBeLessThan(100);
  });

  it("host path: no tfjs kernel at all", async () => {
    const w = tf.variable(tf.ones([4, 3]));
    const g = tf.onesLike(w);
    const opt = new AdamW([["w", w]], { lr: 1e-3, clipPerTensor: 1, implementation: "host" });
    expect((await tf.profile(() => opt.step({ w: g }))).kernels.length).toBe(0);
    opt.dispose();
    tf.dispose([w, g]);
  });

  for (const implementation of ["host", "device"] as const)
    it(`does not change tf.memory().numTensors across steps (${implementation})`, () => {
      const params: [string, tf.Variable][] = [
        ["a.weight", tf.variable(tf.randomNormal([5, 4], 0, 1, "float32", 1))],
        ["a.bias", tf.variable(tf.zeros([4]))],
        ["pos", tf.variable(tf.randomNormal([1, 3, 4], 0, 1, "float32", 2))],
      ];
      const grads = Object.fromEntries(params.map(([n, v]) => [n, tf.onesLike(v).mul(5)]));
      const opt = new AdamW(params, {
        lr: 1e-2,
        clipPerTensor: 3,
        clipGlobalNorm: 2,
        implementation,
      });
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) opt.step(grads);
      // An external change to a parameter (loadStateDict, EMA copy) must be picked up, leak-free.
      tf.tidy(() => params[0][1].assign(tf.fill([5, 4], 100)));
      opt.step(grads);
      expect(tf.memory().numTensors).toBe(before);
      // Updated from the new values (one step of at most ~lr away from 100).
      expect(Math.abs(params[0][1].dataSync()[0] - 100)).toBeLessThan(0.1);
      opt.dispose();
      tf.dispose([...params.map(([, v]) => v), ...Object.values(grads)]);
    });

  it("honours a name predicate for the no-decay group, explicit groups and lrScale", () => {
    const w = tf.variable(tf.ones([2, 2]));
    const pos = tf.variable(tf.ones([1, 2, 2]));
    const opt = new AdamW(
      [
        ["w", w],
        ["pos_embed", pos],
      ],
      { lr: 0.1, noDecay: (name) => name === "pos_embed" },
    );
    expect(opt.groups.map((g) => g.params)).toEqual([["w"], ["pos_embed"]]);
    opt.dispose();
    const explicit = new AdamW(
      [
        { name: "backbone", params: [["w", w]], lrScale: 0.5 },
        { name: "head", params: [["pos_embed", pos]], weightDecay: 0 },
      ],
      { lr: 0.2 },
    );
    expect(explicit.groups.map((g) => [g.name, g.lr, g.weightDecay])).toEqual([
      ["backbone", 0.1, 0.04],
      ["head", 0.2, 0],
    ]);
    explicit.setLr(1e-3, "head");
    expect(explicit.groups[1].lr).toBe(1e-3);
    explicit.dispose();
    tf.dispose([w, pos]);
  });

  it("rejects bad input with errors that name the argument", () => {
    const w = tf.variable(tf.ones([2, 2]));
    const params: [string, tf.Variable][] = [["w", w]];
    expect(() => new AdamW(params, { lr: Number.NaN })).toThrow(
      /lr: expected a finite number.*got NaN/,
    );
    const opt = new AdamW(params, { lr: 0.1 });
    expect(() => opt.setLr(Number.POSITIVE_INFINITY)).toThrow(ConfigError);
    expect(() => opt.setLr(Number.NaN)).toThrow(
      /lr: expected a finite number in \[0, ∞\), got NaN/,
    );
    expect(() => opt.setWeightDecay(-1)).toThrow(/weightDecay/);
    expect(() => opt.step({ w: tf.ones([3]) })).toThrow(ShapeError);
    expect(() => opt.step({ w: tf.ones([3]) })).toThrow(/grads\["w"\]: expected shape \[2, 2\]/);
    expect(() => opt.step({})).toThrow(/no gradient for w/);
    expect(() => opt.step({ w: tf.ones([2, 2]), z: tf.ones([1]) })).toThrow(/unknown parameters z/);
    expect(() => opt.setLr(0.1, "nope")).toThrow(/setLr group/);
    expect(() => new AdamW([{ params: params }, { params: params }], { lr: 0.1 })).toThrow(
      /"w" is in two groups/,
    );
    expect(opt.numSteps).toBe(0);
    opt.dispose();
    w.dispose();
  });

  it("refuses a device loss scale without a fused kernel that unscales, naming the backend", () => {
    const w = tf.variable(tf.ones([2]));
    const opt = new AdamW([["w", w]], { lr: 0.1, implementation: "host" });
    expect(opt.fusesLossScale()).toBe(false);
    const g = { w: tf.ones([2]) };
    const lossScale = {
      state: tf.zeros([4]),
      scale: tf.scalar(1),
      growthFactor: 2,
      backoffFactor: 0.5,
      growthInterval: 2000,
      knownSkips: 0,
      unresolved: 0,
    };
    expect(() => opt.step(g, { lossScale })).toThrow(
      /AdamW.step: options.lossScale needs a fused AdamW kernel that unscales on the device, and backend '\w+' \(implementation 'host'\) has none/,
    );
    expect(opt.numSteps).toBe(0);
    opt.step(g);
    expect(() => opt.discountSkippedSteps(2)).toThrow(/skipped/);
    opt.discountSkippedSteps(1);
    expect(opt.numSteps).toBe(0);
    tf.dispose([w, g.w, lossScale.state, lossScale.scale]);
    opt.dispose();
  });

  it("accepts tf.variableGrads output keyed by the Variables' own names", () => {
    const w = tf.variable(tf.ones([3, 2]), true, "unique_w_name");
    const opt = new AdamW([["layer.weight", w]], { lr: 0.1, weightDecay: 0 });
    const { grads, value } = tf.variableGrads(() => w.square().sum() as tf.Scalar, [w]);
    opt.step(grads);
    // First Adam step moves every coordinate by lr against the gradient's sign.
    expectClose(w, new Array(6).fill(0.9), 1e-6, "w");
    tf.dispose([w, value, ...Object.values(grads)]);
    opt.dispose();
  });
});
