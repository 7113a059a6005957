import * as tf from "@tensorflow/tfjs";
import { Rng, loadTorchStateDict } from "@sit/core";
import { DinoLoss, dinoLoss } from "@sit/losses";
import { TEST_BACKENDS, loadFixture, maxRelativeError, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { gradientsByName } from "./gradients";
import { DinoHead } from "./dino-head";

// dino.safetensors (PyTorch, float64 → float32): a DINO head on given features of 2 global + 3
// local crops, the multi-crop loss with centering, every student gradient, the centre after update.
// Tolerances: the fixtures' (1e-5 relative for forward values, 1e-4 for gradients).
const FORWARD_TOL = 1e-5;
const GRAD_TOL = 1e-4;

function headFrom(fx: Record<string, tf.Tensor>, prefix: string, cfg: Record<string, number>) {
  const head = new DinoHead(cfg.dim, {
    hidden: cfg.hidden,
    bottleneck: cfg.bottleneck,
    outDim: cfg.out,
    rng: Rng.seed(1),
  });
  const dict: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(fx))
    if (k.startsWith(prefix))
      dict[k.slice(prefix.length).replace("last_layer_v", "last_layer.weight_v")] = v;
  const { missing, unexpected } = loadTorchStateDict(head, dict, { strict: false });
  expect(missing, "every head parameter is in the fixture").toEqual([]);
  expect(unexpected).toEqual([]);
  return head;
}

describe.each(TEST_BACKENDS)("DINO head and loss against PyTorch on %s", (backend) => {
  it("head outputs, loss, every student gradient and the centre after its update", async () => {
    await withBackend(backend, () => {
      const { tensors: fx, metadata } = loadFixture("dino.safetensors");
      const cfg = metadata.config as Record<string, number>;
      const student = headFrom(fx, "student.", cfg);
      const teacher = headFrom(fx, "teacher.", cfg);
      const loss = new DinoLoss(cfg.out, {
        nGlobal: cfg.n_global,
        studentTemperature: metadata.student_temperature as number,
        teacherTemperature: metadata.teacher_temperature as number,
        warmupTeacherTemperature: metadata.teacher_temperature as number,
        centerMomentum: metadata.center_momentum as number,
      });
      loss.center.assign(fx["input.center"]);
      const features = tf.variable(fx["input.student_features"]);
      const before = tf.memory().numTensors;
      const t = teacher.apply(fx["input.teacher_features"]);
      let s: tf.Tensor | undefined;
      const { loss: value, grads } = gradientsByName(student, () => {
        const out = student.apply(features);
        s = tf.keep(out.clone());
        return { loss: loss.loss(out, t, 0) };
      });
      const gInput = tf.grad((x: tf.Tensor) => loss.loss(student.apply(x), t, 0))(features);

      expect(maxRelativeError(s!, fx["output.student"])).toBeLessThan(FORWARD_TOL);
      expect(maxRelativeError(t, fx["output.teacher"])).toBeLessThan(FORWARD_TOL);
      expect(maxRelativeError(value, fx.loss)).toBeLessThan(FORWARD_TOL);
      for (const name of Object.keys(fx).filter((k) => k.startsWith("grad.mlp."))) {
        const ours = grads[name.slice(5)];
        // PyTorch Linear weights are [out, in]; ours [in, out].
        const ref = fx[name].rank === 2 ? tf.transpose(fx[name]) : fx[name];
        expect(maxRelativeError(ours, ref), name).toBeLessThan(GRAD_TOL);
        if (ref !== fx[name]) ref.dispose();
      }
      const gV = tf.transpose(fx["grad.last_layer_v"]);
      expect(maxRelativeError(grads["last_layer.weight_v"], gV), "last_layer_v").toBeLessThan(
        GRAD_TOL,
      );
      expect(maxRelativeError(gInput, fx["grad.input.student_features"])).toBeLessThan(GRAD_TOL);

      loss.update(t);
      expect(maxRelativeError(loss.center, fx.center_after)).toBeLessThan(FORWARD_TOL);
      tf.dispose([t, s!, value, gInput, gV, ...Object.values(grads)]);
      expect(tf.memory().numTensors, "no tensor left behind").toBe(before);

      // The stand-alone loss on the fixture's own head outputs gives the fixture's loss.
      const one = dinoLoss(fx["output.student"], fx["output.teacher"], fx["input.center"], {
        studentTemperature: 0.1,
        teacherTemperature: 0.04,
      });
      expect(maxRelativeError(one, fx.loss)).toBeLessThan(FORWARD_TOL);
      tf.dispose([one, features, ...Object.values(fx)]);
      student.dispose();
      teacher.dispose();
      loss.dispose();
    });
  });
});
