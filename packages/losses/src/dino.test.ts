import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { DinoLoss, dinoLoss, teacherTemperatureAt, updatedCenter } from "./index";

// The DINO loss against PyTorch is tested with its head on dino.safetensors (@sit/recipes'
// dino-head.test.ts); here: the schedule, the centre and the argument checks.
describe("DINO loss", () => {
  it("warms the teacher temperature up as np.linspace over the warm-up steps, then holds it", () => {
    const o = { warmup: 0.04, final: 0.07, warmupSteps: 4 };
    // np.linspace(0.04, 0.07, 4) = [0.04, 0.05, 0.06, 0.07]
    expect([0, 1, 2, 3, 4, 100].map((s) => teacherTemperatureAt(s, o))).toEqual(
      [0.04, 0.05, 0.06, 0.07, 0.07, 0.07].map((x) => expect.closeTo(x, 12)),
    );
    expect(teacherTemperatureAt(0)).toBe(0.04);
    expect(() => teacherTemperatureAt(-1)).toThrow(/step/);
    expect(() => teacherTemperatureAt(0, { final: 0 })).toThrow(/final/);
  });

  it("moves the centre by (1 − m) towards the batch mean of the teacher rows", () => {
    const center = tf.tensor2d([[1, 0]]);
    const teacher = tf.tensor2d([
      [3, 2],
      [5, 4],
    ]);
    expect(Array.from(updatedCenter(center, teacher, 0.9).dataSync())).toEqual([
      expect.closeTo(0.9 + 0.4, 6),
      expect.closeTo(0.3, 6),
    ]);
    const loss = new DinoLoss(2, { centerMomentum: 0.5 });
    loss.update(teacher);
    expect(Array.from(loss.center.dataSync())).toEqual([2, 1.5]);
    loss.dispose();
    tf.dispose([center, teacher]);
  });

  it("gives no gradient to the teacher and refuses mismatched shapes by name", () => {
    const s = tf.randomNormal([6, 4], 0, 1, "float32", 1);
    const t = tf.randomNormal([4, 4], 0, 1, "float32", 2);
    const c = tf.zeros([1, 4]);
    const [, gt] = tf.grads((a: tf.Tensor, b: tf.Tensor) => dinoLoss(a, b, c))([s, t]);
    expect(tf.max(tf.abs(gt)).dataSync()[0]).toBe(0);
    expect(() => dinoLoss(tf.zeros([5, 4]), t, c)).toThrow(/student: expected \[nCrops·2, 4\]/);
    expect(() => dinoLoss(s, tf.zeros([3, 4]), c)).toThrow(/teacher: expected nGlobal/);
    expect(() => dinoLoss(s, t, tf.zeros([3]))).toThrow(/center: expected a float32 tensor of 4/);
    expect(() => dinoLoss(s, t, c, { studentTemperature: 0 })).toThrow(/studentTemperature/);
    tf.dispose([s, t, c, gt]);
  });
});
