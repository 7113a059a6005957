import * as tf from "@tensorflow/tfjs";
import { ConfigError, LayerNorm, Linear, Module, Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, expectClose, loadFixture, loadSchedules, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { EmaTeacher, cosineMomentum } from "./index";

/** The fixture's three tensors, plus a buffer that must be copied but never averaged. */
class Tiny extends Module {
  constructor() {
    super();
    this.registerParameter("w", tf.zeros([6, 5]));
    this.registerParameter("b", tf.zeros([5]));
    this.registerParameter("gamma", tf.ones([5]));
    this.registerBuffer("running", tf.zeros([5]));
  }
}

/** Many small parameters, as a ViT has: 3 × (Linear + LayerNorm) = 12 tensors. */
class Stack extends Module {
  constructor(depth: number, seed = 0) {
    super();
    const rng = Rng.seed(seed);
    for (let i = 0; i < depth; i++) {
      this.registerModule(`fc${i}`, new Linear(8, 8, { rng }));
      this.registerModule(`norm${i}`, new LayerNorm(8));
    }
  }
}

function values(m: Module): Record<string, Float32Array> {
  return Object.fromEntries(
    Object.entries(m.stateDict()).map(([k, v]) => [k, v.dataSync() as Float32Array]),
  );
}

describe.each(TEST_BACKENDS)("EmaTeacher on %s", (backend) => {
  it("matches PyTorch over three updates with the fixture's momenta", async () => {
    await withBackend(backend, () => {
      const { tensors, metadata } = loadFixture("ema.safetensors");
      const momenta = metadata.momenta as number[];
      expect(momenta).toHaveLength(3);
      const student = new Tiny();
      student.loadStateDict(
        { w: tensors["student.w"], b: tensors["student.b"], gamma: tensors["student.gamma"] },
        { strict: false },
      );
      const ema = new EmaTeacher(student, () => new Tiny());
      // The fixture starts from its own teacher values (rule: student_i = student + 0.01·i).
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
        for (const name of ["w", "b", "gamma"]) {
          expectClose(
            ema.module.stateDict()[name],
            tensors[`teacher.step${i}.${name}`],
            1e-6,
            `step ${i} ${name}`,
          );
        }
      }
      tf.dispose(Object.values(base));
      tf.dispose(Object.values(tensors));
      ema.dispose();
      student.dispose();
    });
  });

  it("starts as an exact copy (parameters and buffers), not trainable, independent of the student", async () => {
    await withBackend(backend, () => {
      const student = new Stack(2);
      const sb = student.namedBuffers();
      const tiny = new Tiny();
      tiny.namedBuffers()[0][1].assign(tf.tensor1d([1, 2, 3, 4, 5]));
      const tinyEma = new EmaTeacher(tiny, new Tiny());
      expect(Array.from(tinyEma.module.namedBuffers()[0][1].dataSync())).toEqual([1, 2, 3, 4, 5]);
      const ema = new EmaTeacher(student, () => new Stack(2, 7));
      expect(sb).toHaveLength(0);
      const sv = values(student);
      const tv = values(ema.module);
      // Built from another seed: equal only because the teacher copied the student.
      const fresh = new Stack(2, 7);
      expect(Array.from(values(fresh)["fc0.weight"])).not.toEqual(Array.from(sv["fc0.weight"]));
      fresh.dispose();
      for (const k of Object.keys(sv)) expect(Array.from(tv[k]), k).toEqual(Array.from(sv[k]));
      expect(ema.module.parameters().every((p) => !p.trainable)).toBe(true);
      expect(student.parameters().every((p) => p.trainable)).toBe(true);
      // Changing the student afterwards leaves the teacher alone.
      const w = student.namedParameters()[0][1];
      const before = Array.from(ema.module.namedParameters()[0][1].dataSync());
      w.assign(tf.tidy(() => tf.add(w, 1)));
      expect(Array.from(ema.module.namedParameters()[0][1].dataSync())).toEqual(before);
      // Buffers are not averaged: a changed student buffer does not reach the teacher on update.
      tiny.namedBuffers()[0][1].assign(tf.tensor1d([9, 9, 9, 9, 9]));
      tinyEma.update(tiny, 0.5);
      expect(Array.from(tinyEma.module.namedBuffers()[0][1].dataSync())).toEqual([1, 2, 3, 4, 5]);
      ema.dispose();
      tinyEma.dispose();
      student.dispose();
      tiny.dispose();
    });
  });

  it("updates with a constant number of arithmetic kernels and leaks nothing", async () => {
    await withBackend(backend, async () => {
      const counts: Record<number, { arithmetic: number; total: number }> = {};
      for (const depth of [2, 10]) {
        const student = new Stack(depth);
        const ema = new EmaTeacher(student, () => new Stack(depth));
        ema.update(student, 0.99);
        const before = tf.memory().numTensors;
        const info = await tf.profile(() => ema.update(student, 0.99));
        for (let i = 0; i < 3; i++) ema.update(student, 0.9);
        expect(tf.memory().numTensors, "tensor count after updates").toBe(before);
        const names = info.kernels.map((k) => k.name);
        const arithmetic = names.filter(
          (k) => !["Reshape", "Concat", "SplitV", "Slice"].includes(k),
        );
        counts[depth] = { arithmetic: arithmetic.length, total: info.kernels.length };
        if (process.env.SIT_VERBOSE) console.log(backend, depth, names.length, names.join(","));
        ema.dispose();
        student.dispose();
      }
      // 8 vs 40 parameters: the same element-wise work (two products and a sum).
      expect(counts[2].arithmetic).toBeLessThanOrEqual(3);
      expect(counts[10].arithmetic).toBe(counts[2].arithmetic);
    });
  });
});

describe("EmaTeacher input checks", () => {
  it("rejects mismatched architectures, the student itself and bad momenta", () => {
    const student = new Stack(2);
    expect(() => new EmaTeacher(student, () => new Stack(3))).toThrow(ShapeError);
    expect(() => new EmaTeacher(student, () => new Stack(3))).toThrow(
      /teacher lacks parameter fc2.weight|student lacks parameter fc2/,
    );
    expect(() => new EmaTeacher(student, student)).toThrow(ConfigError);
    expect(() => new EmaTeacher(student, (() => 3) as unknown as () => Stack)).toThrow(
      /teacher: expected a Module/,
    );
    const ema = new EmaTeacher(student, () => new Stack(2));
    expect(() => ema.update(student, 1.5)).toThrow(
      /momentum: expected a finite number in \[0, 1\], got 1.5/,
    );
    expect(() => ema.update(new Stack(1), 0.9)).toThrow(/student: expected the architecture/);
    ema.dispose();
    student.dispose();
  });
});

describe("cosineMomentum", () => {
  it("matches every value of schedules.json's momentum entry", () => {
    const { momentum } = loadSchedules() as {
      momentum: {
        args: {
          base: number;
          final: number;
          epochs: number;
          iters_per_epoch: number;
          warmup_epochs: number;
        };
        values: number[];
      };
    };
    const { base, final, epochs, iters_per_epoch, warmup_epochs } = momentum.args;
    expect(warmup_epochs).toBe(0);
    const schedule = cosineMomentum({ base, final, totalSteps: epochs * iters_per_epoch });
    expect(momentum.values).toHaveLength(epochs * iters_per_epoch);
    momentum.values.forEach((v, i) => {
      expect(Math.abs(schedule(i) - v), `step ${i}`).toBeLessThanOrEqual(1e-15);
    });
    expect(schedule(epochs * iters_per_epoch)).toBe(final);
  });

  it("defaults to 0.996 → 1 and checks its arguments", () => {
    const s = cosineMomentum({ totalSteps: 10 });
    expect(s(0)).toBe(0.996);
    expect(s(5)).toBeCloseTo(0.998, 12);
    expect(() => cosineMomentum({ totalSteps: 0 })).toThrow(/totalSteps/);
    expect(() => cosineMomentum({ totalSteps: 5, base: 1.2 })).toThrow(/base/);
    expect(() => s(-1)).toThrow(/step/);
  });
});

describe("EmaTeacher.update with a device skip flag", () => {
  it("is refused where no fused EMA reads the flag, naming the backend", async () => {
    await withBackend("cpu", () => {
      const student = new Tiny();
      const ema = new EmaTeacher(student, () => new Tiny());
      const flags = tf.zeros([4]);
      expect(() => ema.update(student, 0.5, { skip: { tensor: flags, index: 2 } })).toThrow(
        /EmaTeacher.update: options.skip \(a flag on the device\) needs a fused EMA kernel that reads it, and backend 'cpu' has none/,
      );
      tf.dispose(flags);
      ema.dispose();
      student.dispose();
    });
  });
});
