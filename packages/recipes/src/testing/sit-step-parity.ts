import * as tf from "@tensorflow/tfjs";
import { loadTorchStateDict, toTorchStateDict } from "@sit/core";
import { expectClose, loadFixture } from "@sit/testing";
import { expect } from "vitest";
import type { Precision } from "@sit/kernels";
import { type SitRecipe, createSiT } from "../sit";
import { SitNetwork } from "../sit-network";
const nchwToNhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;

function pick(tensors: Record<string, tf.Tensor>, prefix: string): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(tensors))
    if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
  return out;
}

/** Gradients in PyTorch layout and SiT names, via the module's layout tags. */
export function gradsToTorch(
  recipe: SitRecipe,
  grads: Record<string, tf.Tensor>,
): Record<string, tf.Tensor> {
  // Load the gradients into a scratch copy of the network, then export it in PyTorch layout.
  const scratch = recipe.teacher.module;
  const saved = scratch.stateDict();
  const backup: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(saved)) backup[k] = tf.clone(v);
  scratch.loadStateDict(grads, { strict: false });
  const torch = SitNetwork.toSitNames(toTorchStateDict(scratch));
  scratch.loadStateDict(backup);
  tf.dispose(Object.values(backup));
  return torch;
}

/**
 * SiT built from the fixture (sit_step.safetensors): its weights, the step's inputs (NHWC) and
 * hyper-parameters, in `precision`.
 */
export function sitFromFixture(precision: Precision = "f32") {
  const { tensors: f, metadata } = loadFixture("sit_step.safetensors");
  const cfg = metadata.config as {
    img: number;
    patch: number;
    dim: number;
    depth: number;
    heads: number;
    proj_hidden: number;
    proj_out: number;
  };
  const hyper = metadata.hyper as {
    tau: number;
    lam: number;
    lr: number;
    wd: number;
    momentum: number;
    clip: number;
  };
  const recipe = createSiT({
    precision,
    backbone: {
      imgSize: cfg.img,
      patchSize: cfg.patch,
      embedDim: cfg.dim,
      depth: cfg.depth,
      numHeads: cfg.heads,
      dropPathRate: 0,
    },
    projection: { hidden: cfg.proj_hidden, outDim: cfg.proj_out },
    optim: { stepsPerEpoch: 1, epochs: 1, batchSize: 6, clipGrad: hyper.clip },
    temperature: hyper.tau,
    lambda: hyper.lam,
  });
  loadTorchStateDict(recipe.student, SitNetwork.fromSitNames(pick(f, "student.")), {
    strict: false,
  });
  loadTorchStateDict(recipe.teacher.module, SitNetwork.fromSitNames(pick(f, "teacher.")), {
    strict: false,
  });
  // The fixture names the views x1/x2, the corrupted views c1/c2 and the masks m1/m2.
  const inputs = {
    clean: [nchwToNhwc(f.x1), nchwToNhwc(f.x2)],
    corrupted: [nchwToNhwc(f.c1), nchwToNhwc(f.c2)],
    masks: [nchwToNhwc(f.m1), nchwToNhwc(f.m2)],
  } as const;
  const stepHyper = { lr: hyper.lr, wd: hyper.wd, momentum: hyper.momentum };
  return { f, hyper, recipe, inputs, stepHyper };
}

/**
 * One SiT step from the PyTorch fixture's weights and inputs (sit_step.safetensors) on the active
 * backend, checked against the fixture: projections, losses, reconstruction, every gradient before
 * clipping, the weights after AdamW and EMA, and the BatchNorm statistics. `readBack`: the backend
 * has no synchronous read (webgpu under Node): the step reads its losses asynchronously and the
 * comparisons run on cpu afterwards (the active backend is then cpu).
 */
export async function checkSitStepParity(readBack: boolean): Promise<void> {
  const { f, hyper, recipe, inputs, stepHyper } = sitFromFixture();
  const d = readBack
    ? await recipe.stepOnInputsAsync(inputs, stepHyper)
    : recipe.stepOnInputs(inputs, stepHyper, true);

  const rec = tf.transpose(d.reconstructionImages, [0, 3, 1, 2]);
  const grads = gradsToTorch(recipe, d.grads);
  const student = SitNetwork.toSitNames(toTorchStateDict(recipe.student));
  const teacher = SitNetwork.toSitNames(toTorchStateDict(recipe.teacher.module));
  if (readBack) {
    // No synchronous read on this backend: read every tensor compared below once (tfjs keeps
    // the values), then compare on cpu, where tensors move through those values.
    const all = [
      ...Object.values(f),
      ...[d.studentProjection, d.teacherProjection, rec],
      ...[grads, student, teacher].flatMap((r) => Object.values(r)),
    ];
    await Promise.all(all.map((t) => t.data()));
    await tf.setBackend("cpu");
  }
  expectClose(d.contrastive, f["loss.contrastive"], 1e-5, "loss.contrastive");
  expectClose(d.reconstruction, f["loss.reconstruction"], 1e-5, "loss.reconstruction");
  expectClose(d.loss, f["loss.total"], 1e-5, "loss.total");
  expectClose(d.studentProjection, f["out.student_proj"], 1e-5, "student projection");
  expectClose(d.teacherProjection, f["out.teacher_proj"], 1e-5, "teacher projection");
  expectClose(rec, f["out.reconstruction"], 1e-5, "reconstruction");

  // Every gradient before clipping (the reconstruction head's and everything upstream of it
  // included: see packages/testing/fixtures/README.md for why an earlier fixture had them
  // wrong).
  const gradNames = Object.keys(f)
    .filter((k) => k.startsWith("grad."))
    .map((k) => k.slice(5));
  expect(gradNames.length).toBe(48);
  // Biases followed by BatchNorm (cls_head.mlp.{0,3,6}.bias) have zero gradient in exact
  // arithmetic: there both sides are ~1e-7 rounding noise, compared absolutely.
  for (const n of gradNames) expectClose(grads[n], f[`grad.${n}`], 1e-4, `grad.${n}`, 1e-6);

  // Adam's first step moves every entry by ±lr·g/|g|: where the gradient is zero in exact
  // arithmetic (e.g. the key bias, which softmax ignores) both sides normalise rounding noise
  // to a random sign. Those entries are checked to have moved by at most one Adam step; all
  // others must match.
  const noisy = (n: string) => tf.tidy(() => tf.less(tf.abs(f[`grad.${n}`]), 1e-6).dataSync());
  const compareAfter = (
    mine: tf.Tensor,
    ref: tf.Tensor,
    before: tf.Tensor,
    mask: Uint8Array | Int32Array | Float32Array,
    label: string,
    bound: number,
  ) => {
    const [a, b, p0] = [mine.dataSync(), ref.dataSync(), before.dataSync()];
    const keepA: number[] = [];
    const keepB: number[] = [];
    for (let i = 0; i < a.length; i++) {
      if (mask[i])
        expect(
          Math.abs(a[i] - p0[i]),
          `${label}[${i}] moved more than one step`,
        ).toBeLessThanOrEqual(bound);
      else {
        keepA.push(a[i]);
        keepB.push(b[i]);
      }
    }
    compared += keepA.length;
    if (keepA.length > 0) expectClose(keepA, keepB, 1e-5, label);
  };
  const lrStep = hyper.lr * 1.001 + 1e-7;
  let compared = 0;
  for (const n of Object.keys(pick(f, "after.student.")))
    compareAfter(
      student[n],
      f[`after.student.${n}`],
      f[`student.${n}`],
      noisy(n),
      `after.student.${n}`,
      lrStep,
    );
  for (const n of Object.keys(pick(f, "after.teacher.")))
    compareAfter(
      teacher[n],
      f[`after.teacher.${n}`],
      f[`after.teacher.${n}`],
      noisy(n),
      `after.teacher.${n}`,
      2 * (1 - hyper.momentum) * lrStep,
    );
  // Nearly all of the 2 × ~40k weights have a real gradient.
  expect(compared).toBeGreaterThan(0.95 * 2 * recipe.student.numParameters());
  const buffers = pick(f, "after.student_buffer.");
  expect(Object.keys(buffers).length).toBe(6);
  for (const n of Object.keys(buffers))
    expectClose(student[n], buffers[n], 1e-5, `after.student_buffer.${n}`);

  tf.dispose([
    ...Object.values(f),
    ...Object.values(inputs).flat(),
    rec,
    ...Object.values(grads),
    ...Object.values(student),
    ...Object.values(teacher),
  ]);
  tf.dispose([
    d.studentProjection,
    d.teacherProjection,
    d.reconstructionImages,
    ...Object.values(d.grads),
  ]);
  recipe.dispose();
}
