import * as tf from "@tensorflow/tfjs";
import { flatEmaKernel } from "@sit/core";
import { expectClose, loadFixture } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { FLAT_EMA_KERNEL, webgpuFlatEma } from "./ema";
import { countBindGroups, useWebgpu } from "./testing";
import "./flat-register";

const NAMES = ["w", "b", "gamma"];

describe("webgpu flat EMA (SitFlatEma)", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("is the EMA registered for webgpu", () => {
    expect(flatEmaKernel("webgpu")).toBe(webgpuFlatEma);
  });

  it("matches ema.safetensors over three updates in one tfjs kernel each, without leaks", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const { tensors, metadata } = loadFixture("ema.safetensors");
    const momenta = metadata.momenta as number[];
    const teacher = NAMES.map((n) => tf.variable(tensors[`teacher.step0.${n}`].clone(), false));
    // The fixture's rule: at update i the student is student + 0.01·i.
    const students = [1, 2, 3].map((i) =>
      NAMES.map((n) => tf.tidy(() => tf.add(tensors[`student.${n}`], 0.01 * i))),
    );
    let count = -1;
    const ids: object[][] = [];
    for (let i = 1; i <= 3; i++) {
      const profile = await tf.profile(() => {
        const next = webgpuFlatEma(teacher, students[i - 1], momenta[i - 1]);
        // Update 1: the teacher shares the fixture's data (clone), so fresh tensors; after
        // that its buffers are its own and are updated in place (null).
        expect(next.map((t) => t === null)).toEqual(NAMES.map(() => i > 1));
        next.forEach((t, k) => {
          if (!t) return;
          teacher[k].assign(t);
          t.dispose();
        });
      });
      ids.push(teacher.map((t) => t.dataId));
      expect(profile.kernels.map((k) => k.name)).toEqual([FLAT_EMA_KERNEL]);
      for (const [k, n] of NAMES.entries())
        expectClose(
          await teacher[k].data(),
          await tensors[`teacher.step${i}.${n}`].data(),
          1e-6,
          `step ${i} ${n}`,
        );
      if (i === 1) count = tf.memory().numTensors;
      else expect(tf.memory().numTensors).toBe(count);
    }
    // The same buffers after updates 2 and 3 (kernels reading the teacher keep their bind groups).
    expect(ids[2]).toEqual(ids[1]);
    tf.dispose([...teacher, ...students.flat(), ...Object.values(tensors)]);
  });

  it("keeps its bind group from update to update while the momentum changes", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const teacher: tf.Variable[] = [
      tf.variable(tf.tensor1d([1, 2, 3]), false),
      tf.variable(tf.scalar(4), false),
    ];
    const student = [tf.tensor1d([0, 1, 2]), tf.scalar(8)];
    let expected = [[1, 2, 3], [4]];
    const made: number[] = [];
    for (const m of [0.5, 0.75, 0.9, 0.95]) {
      const [count, next] = await countBindGroups(() => webgpuFlatEma(teacher, student, m));
      made.push(count);
      next.forEach((t, k) => {
        if (!t) return;
        teacher[k].assign(t);
        t.dispose();
      });
      const studentValues = [[0, 1, 2], [8]];
      expected = expected.map((e, k) => e.map((x, j) => x * m + studentValues[k][j] * (1 - m)));
      // Each update reads its own momentum (a read also submits: the pool hands temporaries back).
      for (const [k, t] of teacher.entries())
        expectClose(await t.data(), new Float32Array(expected[k]), 1e-6, `momentum ${m}`);
    }
    // The first update assigns the teacher fresh buffers (it shared its initial values' data) and
    // the pool settles at the second: from then on one bind group serves every momentum.
    expect(made.slice(2)).toEqual([0, 0]);
    tf.dispose([...teacher, ...student]);
  });

  it("never writes into data that the teacher shares with the student", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const student = tf.variable(tf.tensor1d([1, 2, 3]));
    const teacher = tf.variable(tf.zeros([3]), false);
    teacher.assign(student); // an EmaTeacher starts like this
    const other = tf.tensor1d([3, 2, 1]);
    const [next] = webgpuFlatEma([teacher], [other], 0.5);
    if (!next) throw new Error("a teacher sharing the student's data was updated in place");
    teacher.assign(next);
    next.dispose();
    expect(Array.from(await student.data())).toEqual([1, 2, 3]);
    expect(Array.from(await teacher.data())).toEqual([2, 2, 2]);
    tf.dispose([student, teacher, other]);
  });
});
