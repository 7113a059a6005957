import * as tf from "@tensorflow/tfjs";
import { AdamW } from "@sit/core";
import { countBufferCopies, expectClose, loadFixture } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { webgpuFlatEma } from "./ema";
import { useWebgpu } from "./testing";
import { isWriteBackDeferred } from "./write-back";
import "./flat-register";

// The flat EMA reads the student from the flat AdamW's buffer when the student's tensors are
// its mirrors (mirrors.ts), and keeps a persistent flat teacher: one copy per teacher tensor per
// update instead of three, and none for a tensor updated in place at an aligned range of the flat
// teacher (its write-back waits until its own buffer is read: write-back.ts). These pin the values
// (ema.safetensors) and the copies on both paths.

const NAMES = ["w", "b", "gamma"];

/** PyTorch's rule, in float32: mul_(m).add_((1 − m)·s). */
function emaOnHost(t: Float32Array, s: Float32Array, m: number): Float32Array {
  const [a, b] = [Math.fround(m), Math.fround(1 - m)];
  return t.map((x, i) => Math.fround(Math.fround(x * a) + Math.fround(s[i] * b)));
}

describe("webgpu flat EMA over the flat AdamW's buffer", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("matches ema.safetensors reading the student from AdamW, and gathers again when not mirrored", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const { tensors, metadata } = loadFixture("ema.safetensors");
    const momenta = metadata.momenta as number[];
    const student = NAMES.map((n) => tf.variable(tensors[`student.${n}`].clone()));
    const teacher = NAMES.map((n) => tf.variable(tensors[`teacher.step0.${n}`].clone(), false));
    // Two groups, so that the optimiser's flat order (b, then w and gamma) is not the EMA's.
    const [w, b, gamma] = student;
    const opt = new AdamW(
      [
        { name: "no_decay", params: [["b", b]], weightDecay: 0 },
        {
          name: "decay",
          params: [
            ["w", w],
            ["gamma", gamma],
          ],
          weightDecay: 0,
        },
      ],
      { lr: 0 },
    );
    const zeros = Object.fromEntries(NAMES.map((n, i) => [n, tf.zerosLike(student[i])]));
    const update = (m: number) => {
      const next = webgpuFlatEma(teacher, student, m);
      next.forEach((t, k) => {
        if (!t) return;
        teacher[k].assign(t);
        t.dispose();
      });
    };
    for (let i = 1; i <= 3; i++) {
      // The fixture's student at update i is student + 0.01·i; AdamW at lr 0 leaves it as it is
      // and scatters it from its flat buffer, which makes each student tensor a mirror.
      NAMES.forEach((n, k) => {
        student[k].assign(tf.tidy(() => tf.add(tensors[`student.${n}`], 0.01 * i)));
      });
      opt.step(zeros);
      const copies = await countBufferCopies(() => update(momenta[i - 1]));
      // Update 1 gathers the teacher (3) and copies it into fresh tensors (3: each variable still
      // shares its data with the fixture's tensor); then only the scatter into the teacher's own
      // buffers, save b's: first in the flat layout (offset 0), it waits for its write-back.
      const deferred = teacher.map((t) => isWriteBackDeferred(t));
      expect(deferred, `update ${i}`).toEqual(
        i === 1 ? [false, false, false] : [false, true, false],
      );
      expect(copies, `update ${i}`).toBe(i === 1 ? 6 : 2);
      for (const [k, n] of NAMES.entries())
        expectClose(
          await teacher[k].data(),
          await tensors[`teacher.step${i}.${n}`].data(),
          1e-6,
          `update ${i} ${n}`,
        );
    }
    // A student written outside the optimiser is no mirror: both are gathered (3 + 3), then
    // scattered (3).
    const before = await Promise.all(teacher.map((t) => t.data() as Promise<Float32Array>));
    gamma.assign(tf.onesLike(gamma));
    expect(await countBufferCopies(() => update(0.5))).toBe(9);
    for (const [k, t] of teacher.entries())
      expectClose(
        await t.data(),
        emaOnHost(before[k], (await student[k].data()) as Float32Array, 0.5),
        1e-7,
        `after an outside write, ${NAMES[k]}`,
      );
    // A teacher assigned from outside (a restored checkpoint) is gathered again (3 copies) and
    // scattered (3: b, assigned, shares its data with the fill, and w and gamma are unaligned).
    opt.step(zeros);
    teacher[1].assign(tf.fill(teacher[1].shape, 2));
    const restored = await Promise.all(teacher.map((t) => t.data() as Promise<Float32Array>));
    expect(await countBufferCopies(() => update(0.25))).toBe(6);
    for (const [k, t] of teacher.entries())
      expectClose(
        await t.data(),
        emaOnHost(restored[k], (await student[k].data()) as Float32Array, 0.25),
        1e-7,
        `after a restore, ${NAMES[k]}`,
      );
    opt.dispose?.();
    tf.dispose([...teacher, ...student, ...Object.values(zeros), ...Object.values(tensors)]);
  });
});
