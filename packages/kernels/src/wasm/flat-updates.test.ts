import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { AdamW, Module, Rng, flatAdamWKernel, flatEmaKernel } from "@sit/core";
import { EmaTeacher } from "@sit/momentum";
import { expectClose, loadFixture, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { type FlatKernels, flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";
import { setWasmKernels } from "./register";

// The whole-model AdamW and EMA inside the wasm heap (flat-adamw.ts, flat-ema.ts), against
// PyTorch's numbers (adamw/ema fixtures) and against @sit/core's host loops, which they replace
// on wasm.

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
  const ids: unknown[][] = [];
  const params = model();
  const opt = new AdamW(params, {
    lr: 0.05,
    weightDecay: 0.1,
    clipPerTensor: clip.perTensor,
    clipGlobalNorm: clip.globalNorm,
    implementation,
  });
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
    it(`agrees with the host loop, moments included, updating in place (clip ${JSON.stringify(clip)})`, async () => {
      await withBackend("wasm", () => {
        const heap = train("auto", clip);
        const host = train("host", clip);
        // The host loop rounds once per formula, the heap kernel (like PyTorch) once per operation.
        for (const k of Object.keys(host.values))
          expectClose(heap.values[k], host.values[k], 1e-6, k, 1e-7);
        for (const k of Object.keys(host.moments))
          expectClose(heap.moments[k], host.moments[k], 1e-6, k, 1e-9);
        // In place (no allocation, so the heap cannot fragment): every parameter keeps its buffer.
        expect(heap.ids[2]).toEqual(heap.ids[0]);
        expect(host.ids[2]).not.toEqual(host.ids[0]);
      });
    });

  it("the SIMD module and the JavaScript loops give identical results", async () => {
    await withBackend("wasm", () => {
      const heap = WasmHeap.active();
      const simd = flatKernels(heap, "simd");
      const js = flatKernels(heap, "js");
      expect(simd.kind).toBe("simd");
      expect(js.kind).toBe("js");
      // 4·k + 3 elements: the vector loop and the scalar tail both run.
      const n = 1031;
      const run = (k: FlatKernels) => {
        const rng = Rng.seed(9);
        const make = (std: number, abs = false) =>
          tf.tensor1d(
            rng.fillNormal(new Float32Array(n), 0, std).map((x) => (abs ? Math.abs(x) : x)),
          );
        const [p, g, m, v, t] = [make(1), make(0.1), make(0.01), make(0.001, true), make(1)];
        const at = (x: tf.Tensor) => heap.offset(x);
        const ss = k.sumOfSquares(at(g), n);
        for (const clip of [1, 0.37])
          k.adamw({
            ...{ out: at(p), param: at(p), grad: at(g), m: at(m), v: at(v), size: n, clip },
            ...{ decay: 1 - 1e-3 * 0.04, stepSize: 1e-3 / 0.1, bc2Sqrt: Math.sqrt(0.001) },
            ...{ beta1: 0.9, beta2: 0.999, eps: 1e-8 },
          });
        k.ema(at(t), at(t), at(p), n, 0.996);
        const out = [ss, ...[p, m, v, t].map((x) => Array.from(x.dataSync()))];
        tf.dispose([p, g, m, v, t]);
        return out;
      };
      const a = run(simd);
      const b = run(js);
      expect(a).toEqual(b);
    });
  });

  it("flat-kernels.wasm.ts is the compile of update-kernels.wat and layer-kernels.wat", async () => {
    const { FLAT_KERNELS_WASM_TS, compileFlatKernels, readFlatKernelSources } = await import(
      "../../../../tools/wasm/flat-kernels"
    );
    expect(readFileSync(FLAT_KERNELS_WASM_TS, "utf8")).toBe(
      await compileFlatKernels(readFlatKernelSources((p) => readFileSync(p, "utf8"))),
    );
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

  it("updated weights are what the next matrix product uses (XNNPACK caches packed weights per tensor)", async () => {
    await withBackend("wasm", () => {
      const w = tf.variable(
        tf.tensor2d(Rng.seed(5).fillNormal(new Float32Array(48), 0, 1), [6, 8]),
      );
      const x = tf.tensor2d(Rng.seed(6).fillNormal(new Float32Array(30), 0, 1), [5, 6]);
      const opt = new AdamW([["w", w]], { lr: 0.1 });
      for (let s = 0; s < 3; s++) {
        tf.tidy(() => tf.matMul(x, w).dataSync()); // packs w for XNNPACK
        const g = tf.onesLike(w);
        opt.step({ w: g });
        g.dispose();
        // The product with the updated weights equals the product of their values, copied fresh.
        const fresh = tf.tensor2d(w.dataSync().slice(), [6, 8]);
        expectClose(tf.matMul(x, w), tf.matMul(x, fresh), 1e-6, `step ${s}`);
        fresh.dispose();
      }
      opt.dispose();
      tf.dispose([w, x]);
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
  it("matches PyTorch over ema.safetensors' three updates", async () => {
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
      for (let i = 1; i <= 3; i++) {
        for (const [n, v] of student.namedParameters())
          v.assign(tf.tidy(() => tf.add(base[n], 0.01 * i)));
        ema.update(student, momenta[i - 1]);
        for (const name of ["w", "b", "gamma"])
          expectClose(
            ema.module.stateDict()[name],
            tensors[`teacher.step${i}.${name}`],
            1e-6,
            `${i} ${name}`,
          );
      }
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
      // The teacher's next product uses its updated weight (XNNPACK caches packed weights).
      const t = ema.module.namedParameters()[0][1];
      const x = tf.ones([2, 6]);
      tf.tidy(() => tf.matMul(x, t).dataSync());
      ema.update(student, 0.5);
      const copy = tf.tensor(t.dataSync().slice(), t.shape);
      expectClose(tf.matMul(x, t), tf.matMul(x, copy), 1e-6, "teacher product");
      tf.dispose([x, copy]);
      alias.dispose();
      ema.dispose();
      student.dispose();
    });
  });
});
