import * as tf from "@tensorflow/tfjs";
import { AdamW, Module, Rng, flatAdamWKernel, flatEmaKernel } from "@sit/core";
import { EmaTeacher } from "@sit/momentum";
import { expectClose, loadFixture, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { setWasmKernels } from "./register";

// The whole-model AdamW and EMA inside the wasm heap (flat-adamw.ts, flat-ema.ts), against
// PyTorch's numbers (adamw/ema fixtures) and against @sit/core's host loops, which they replace
// on wasm: same float32 arithmetic, so the results must be identical, moments included.

const SHAPES: [string, number[]][] = [
  ["blocks.0.w", [7, 5]],
  ["blocks.0.b", [5]],
  ["blocks.1.w", [7, 5]],
  ["pos", [1, 4, 3]],
  ["head.w", [300]],
  ["norm.weight", [9]],
];

function model(): [string, tf.Variable][] {
  const rng = Rng.seed(3);
  return SHAPES.map(([n, s]) => {
    const size = s.reduce((a, b) => a * b, 1);
    return [n, tf.variable(tf.tensor(rng.fillNormal(new Float32Array(size), 0, 1), s))];
  });
}

/** Step `s`'s gradients: every other tensor large enough to be clipped at 1. */
function gradients(s: number): Record<string, tf.Tensor> {
  const rng = Rng.seed(40 + s);
  return Object.fromEntries(
    SHAPES.map(([n, shape], i) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const std = i % 2 === 0 ? 3 : 0.01;
      return [n, tf.tensor(rng.fillNormal(new Float32Array(size), 0, std), shape)];
    }),
  );
}

function train(implementation: "auto" | "host", clip: { perTensor?: number; globalNorm?: number }) {
  const params = model();
  const opt = new AdamW(params, {
    lr: 0.05,
    weightDecay: 0.1,
    clipPerTensor: clip.perTensor,
    clipGlobalNorm: clip.globalNorm,
    implementation,
  });
  const ids: unknown[][] = [];
  for (let s = 1; s <= 3; s++) {
    opt.setLr(0.05 / s).setWeightDecay(0.1 + 0.02 * s);
    const g = gradients(s);
    opt.step(g);
    tf.dispose(Object.values(g));
    ids.push(params.map(([, v]) => v.dataId));
  }
  const values = Object.fromEntries(params.map(([n, v]) => [n, v.dataSync().slice()]));
  const state = opt.state();
  const moments = Object.fromEntries(
    Object.entries(state.tensors).map(([k, t]) => [k, t.dataSync().slice()]),
  );
  tf.dispose(Object.values(state.tensors));
  opt.dispose();
  tf.dispose(params.map(([, v]) => v));
  return { values, moments, ids };
}

describe("wasm heap AdamW", () => {
  it("is plugged into @sit/core on wasm and runs by default", async () => {
    await withBackend("wasm", () => {
      expect(flatAdamWKernel("wasm")).toBeDefined();
      expect(flatEmaKernel("wasm")).toBeDefined();
    });
  });

  it("matches PyTorch AdamW over adamw.safetensors' three steps with per-tensor clipping", async () => {
    await withBackend("wasm", async () => {
      const { tensors, metadata } = loadFixture("adamw.safetensors");
      const lr = metadata.lr as number[];
      const wd = metadata.wd_group0 as number[];
      const names = ["w", "bias", "pos"];
      const params: [string, tf.Variable][] = names.map((n) => [
        n,
        tf.variable(tensors[`init.${n}`].clone()),
      ]);
      const opt = new AdamW(params, { lr: lr[0], weightDecay: wd[0], clipPerTensor: 3 });
      for (let s = 1; s <= 3; s++) {
        opt.setLr(lr[s - 1]).setWeightDecay(wd[s - 1]);
        opt.step(Object.fromEntries(names.map((n) => [n, tensors[`grad.step${s}.${n}`]])));
        for (const [n, v] of params)
          expectClose(
            await v.data(),
            await tensors[`param.step${s}.${n}`].data(),
            1e-6,
            `${s} ${n}`,
          );
      }
      opt.dispose();
      tf.dispose([...params.map(([, v]) => v), ...Object.values(tensors)]);
    });
  });

  for (const clip of [{}, { perTensor: 1 }, { perTensor: 1, globalNorm: 0.5 }])
    it(`equals the host loop exactly, moments included (clip ${JSON.stringify(clip)})`, async () => {
      await withBackend("wasm", () => {
        const heap = train("auto", clip);
        const host = train("host", clip);
        for (const k of Object.keys(host.values))
          expect(Array.from(heap.values[k]), k).toEqual(Array.from(host.values[k]));
        for (const k of Object.keys(host.moments))
          expect(Array.from(heap.moments[k]), k).toEqual(Array.from(host.moments[k]));
        // In place: after the first step every parameter keeps its buffer.
        expect(heap.ids[2]).toEqual(heap.ids[1]);
        expect(host.ids[2]).not.toEqual(host.ids[1]);
      });
    });

  it("never writes a buffer that another tensor shares, and leaks nothing", async () => {
    await withBackend("wasm", () => {
      const params = model();
      const opt = new AdamW(params, { lr: 0.1, clipPerTensor: 1 });
      const warm = gradients(0);
      opt.step(warm);
      // A reshape shares the parameter's buffer (a reference count on wasm).
      const alias = params[0][1].reshape([-1]);
      const before = alias.dataSync().slice();
      const n0 = tf.memory().numTensors;
      for (let s = 1; s <= 3; s++) {
        const g = gradients(s);
        opt.step(g);
        tf.dispose(Object.values(g));
        expect(tf.memory().numTensors).toBe(n0);
      }
      expect(Array.from(alias.dataSync())).toEqual(Array.from(before));
      expect(Array.from(params[0][1].dataSync())).not.toEqual(Array.from(before));
      tf.dispose([alias, ...Object.values(warm)]);
      opt.dispose();
      tf.dispose(params.map(([, v]) => v));
    });
  });

  it("zeroes a gradient whose norm overflows float32, as PyTorch and the host loop do", async () => {
    await withBackend("wasm", () => {
      const a = tf.variable(tf.tensor1d([1, 2, 3, 4]));
      const b = tf.variable(tf.tensor1d([1, 1]));
      const opt = new AdamW(
        [
          ["a", a],
          ["b", b],
        ],
        { lr: 0.1, weightDecay: 0, clipPerTensor: 3, clipGlobalNorm: 1 },
      );
      const ga = tf.tensor1d([3e38, 3e38, 1, 1]);
      const gb = tf.tensor1d([0.5, 0.5]);
      opt.step({ a: ga, b: gb });
      // ‖ga‖ is ∞ in float32: its clip factor is 0, so `a` only sees weight decay (0 here).
      expect(Array.from(a.dataSync())).toEqual([1, 2, 3, 4]);
      expect(b.dataSync()[0]).toBeLessThan(1);
      opt.dispose();
      tf.dispose([a, b, ga, gb]);
    });
  });

  it("unplugged, AdamW falls back to the host loop", async () => {
    await withBackend("wasm", () => {
      setWasmKernels(false);
      try {
        expect(flatAdamWKernel("wasm")).toBeUndefined();
        expect(flatEmaKernel("wasm")).toBeUndefined();
      } finally {
        setWasmKernels(true);
      }
      expect(flatAdamWKernel("wasm")).toBeDefined();
    });
  });
});

class Tiny extends Module {
  constructor() {
    super();
    this.registerParameter("w", tf.zeros([6, 5]));
    this.registerParameter("b", tf.zeros([5]));
    this.registerParameter("gamma", tf.ones([5]));
  }
}

describe("wasm heap EMA", () => {
  it("matches PyTorch over ema.safetensors' three updates, updating the teacher in place", async () => {
    await withBackend("wasm", () => {
      const { tensors, metadata } = loadFixture("ema.safetensors");
      const momenta = metadata.momenta as number[];
      const student = new Tiny();
      student.loadStateDict(
        { w: tensors["student.w"], b: tensors["student.b"], gamma: tensors["student.gamma"] },
        { strict: false },
      );
      const ema = new EmaTeacher(student, () => new Tiny());
      ema.module.loadStateDict(
        {
          w: tensors["teacher.step0.w"],
          b: tensors["teacher.step0.b"],
          gamma: tensors["teacher.step0.gamma"],
        },
        { strict: false },
      );
      const base = Object.fromEntries(student.namedParameters().map(([n, v]) => [n, v.clone()]));
      const ids: unknown[][] = [];
      for (let i = 1; i <= 3; i++) {
        for (const [n, v] of student.namedParameters())
          v.assign(tf.tidy(() => tf.add(base[n], 0.01 * i)));
        ema.update(student, momenta[i - 1]);
        ids.push(ema.module.namedParameters().map(([, v]) => v.dataId));
        for (const name of ["w", "b", "gamma"])
          expectClose(
            ema.module.stateDict()[name],
            tensors[`teacher.step${i}.${name}`],
            1e-6,
            `${i} ${name}`,
          );
      }
      expect(ids[2]).toEqual(ids[1]);
      tf.dispose([...Object.values(base), ...Object.values(tensors)]);
      ema.dispose();
      student.dispose();
    });
  });

  it("never writes a teacher buffer that another tensor shares, and leaks nothing", async () => {
    await withBackend("wasm", () => {
      const student = new Tiny();
      const ema = new EmaTeacher(student, () => new Tiny());
      const w = ema.module.namedParameters()[0][1];
      for (const [, v] of student.namedParameters())
        v.assign(tf.randomNormal(v.shape, 0, 1, "float32", v.size));
      // A reshape shares the teacher's buffer (a reference count on wasm).
      const alias = w.reshape([-1]);
      const before = alias.dataSync().slice();
      const n0 = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        ema.update(student, 0.5);
        expect(tf.memory().numTensors).toBe(n0);
      }
      expect(Array.from(alias.dataSync())).toEqual(Array.from(before));
      expect(Array.from(w.dataSync())).not.toEqual(Array.from(before));
      alias.dispose();
      ema.dispose();
      student.dispose();
    });
  });
});
