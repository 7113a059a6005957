import * as tf from "@tensorflow/tfjs";
import { setWebgpuFlatKernels, webgpuHasShaderF16 } from "@sit/kernels";
import { useWebgpu } from "@sit/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SitNetwork } from "./sit-network";
import { gradsToTorch, sitFromFixture } from "./testing/sit-step-parity";
import { toTorchStateDict } from "@sit/core";

afterAll(async () => {
  await tf.setBackend("cpu");
});

const TIMEOUT = { timeout: 300_000 };

async function useF16(ctx: { skip: () => void }): Promise<boolean> {
  if (!(await useWebgpu(ctx))) return false;
  if (webgpuHasShaderF16()) return true;
  console.warn("[skip] mixed-precision specs: the WebGPU adapter has no shader-f16");
  ctx.skip();
  return false;
}

/** ‖a − b‖ / ‖b‖ of two tensors read back. */
async function scaledError(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const [x, y] = [await a.data(), await b.data()];
  let err = 0;
  let norm = 0;
  for (let i = 0; i < y.length; i++) {
    err += (x[i] - y[i]) ** 2;
    norm += y[i] ** 2;
  }
  return norm === 0 ? Math.sqrt(err) : Math.sqrt(err / norm);
}

const weightsOf = (n: SitNetwork) => SitNetwork.toSitNames(toTorchStateDict(n));

// The f16 tolerance, as ‖mixed − fixture‖ / ‖fixture‖ per tensor. f16 keeps 11 significant bits
// (u = 2⁻¹¹ ≈ 4.9e-4); every GEMM rounds its operands and its result, and the contrastive loss
// divides the projections by τ = 0.2 before a softmax, so the errors of the (f16) student and
// teacher projections reach the gradients amplified. Measured on lavapipe: reconstruction head
// ≤ 1e-3, backbone ≤ 3.5e-2, projection head ≤ 4.7e-2 (an f32 step: ≤ 2e-5, sit.webgpu.test.ts).
// 0.1 leaves room for another device's rounding and still fails on any indexing or rounding-point
// bug (errors of order 1).
const F16 = 0.1;

// `device`: the loss scaler folded into the flat AdamW and EMA kernels (scale on the device, no
// read inside the step); `portable`: those kernels unplugged, the scaler unscales with tfjs ops and
// reads its found-inf flag before the step is applied.
describe.each([
  ["device", true],
  ["portable", false],
] as const)(
  "SiT step in mixed precision on webgpu (sit_step.safetensors), %s scaler",
  (_, flat) => {
    beforeAll(() => setWebgpuFlatKernels(flat));
    afterAll(() => setWebgpuFlatKernels(true));
    it(
      "matches the fixture's losses, projections and every gradient within f16's tolerance, and applies the step",
      TIMEOUT,
      async (ctx) => {
        if (!(await useF16(ctx))) return;
        const { f, recipe, inputs, stepHyper } = sitFromFixture("mixed-f16");
        const scaler = recipe.lossScaler!;
        expect(scaler.scale).toBe(65536);
        // A scale under which this small model's gradients cannot overflow f16, so the step applies.
        scaler.loadState({ ...scaler.state(), scale: 1024 });
        const d = await recipe.stepOnInputsAsync(inputs, stepHyper);
        expect(scaler.onDevice).toBe(flat);
        expect([scaler.scale, scaler.growthTracker]).toEqual([1024, 1]);
        const errors: Record<string, number> = {};
        errors.loss = Math.abs(d.loss - (await f["loss.total"].data())[0]) / Math.abs(d.loss);
        errors.student = await scaledError(d.studentProjection, f["out.student_proj"]);
        errors.teacher = await scaledError(d.teacherProjection, f["out.teacher_proj"]);
        const grads = gradsToTorch(recipe, d.grads);
        const names = Object.keys(f)
          .filter((k) => k.startsWith("grad."))
          .map((k) => k.slice(5));
        expect(names.length).toBe(48);
        let worst = 0;
        for (const n of names) {
          // Biases followed by BatchNorm have zero gradient in exact arithmetic: skip the noise.
          if ((await tf.max(tf.abs(f[`grad.${n}`])).data())[0] < 1e-6) continue;
          const e = await scaledError(grads[n], f[`grad.${n}`]);
          worst = Math.max(worst, e);
          expect(e, `grad.${n}`).toBeLessThanOrEqual(F16);
        }
        for (const [k, e] of Object.entries(errors)) expect(e, k).toBeLessThanOrEqual(F16);
        // It ran in f16: the gradients differ from the f32 ones by more than f32 rounding.
        expect(worst).toBeGreaterThan(1e-4);
        console.info(
          `[mixed-f16] SiT step vs fixture: ${JSON.stringify({ ...errors, worstGrad: worst })}`,
        );
        // AdamW and EMA ran: the weights moved from the fixture's starting point.
        const after = weightsOf(recipe.student);
        expect(await scaledError(after.cls_token, f["student.cls_token"])).toBeGreaterThan(0);
        tf.dispose([
          ...Object.values(f),
          ...Object.values(inputs).flat(),
          ...Object.values(grads),
          ...Object.values(after),
        ]);
        tf.dispose([
          d.studentProjection,
          d.teacherProjection,
          d.reconstructionImages,
          ...Object.values(d.grads),
        ]);
        recipe.dispose();
      },
    );

    it(
      "skips AdamW and the EMA update and halves the scale when the f16 gradients overflow; no leak",
      TIMEOUT,
      async (ctx) => {
        if (!(await useF16(ctx))) return;
        const { f, recipe, inputs, stepHyper } = sitFromFixture("mixed-f16");
        const scaler = recipe.lossScaler!;
        // 2^40 · loss overflows f16 in the first GEMM of the backward.
        scaler.loadState({ ...scaler.state(), scale: 2 ** 40 });
        const before = { s: weightsOf(recipe.student), t: weightsOf(recipe.teacher.module) };
        // Parameters only: BatchNorm's running statistics move in every forward, as in PyTorch, where a
        // skipped step skips only the optimiser.
        const read = async (r: Record<string, tf.Tensor>) =>
          Object.fromEntries(
            await Promise.all(
              Object.entries(r)
                .filter(([k]) => !/running_|num_batches/.test(k))
                .map(async ([k, v]) => [k, Array.from(await v.data())]),
            ),
          );
        const [s0, t0] = [await read(before.s), await read(before.t)];
        const step0 = recipe.optimizer.numSteps;
        const d = await recipe.stepOnInputsAsync(inputs, stepHyper);
        expect(scaler.onDevice).toBe(flat);
        expect(Number.isFinite(d.loss)).toBe(true);
        expect([scaler.scale, scaler.growthTracker]).toEqual([2 ** 39, 0]);
        expect(recipe.optimizer.numSteps).toBe(step0);
        const after = { s: weightsOf(recipe.student), t: weightsOf(recipe.teacher.module) };
        expect(await read(after.s)).toEqual(s0);
        expect(await read(after.t)).toEqual(t0);
        tf.dispose([
          d.studentProjection,
          d.teacherProjection,
          d.reconstructionImages,
          ...Object.values(d.grads),
        ]);
        tf.dispose([
          ...Object.values(before.s),
          ...Object.values(before.t),
          ...Object.values(after.s),
          ...Object.values(after.t),
        ]);
        // Steady state: the tensor count does not grow over steps.
        const step = async () => {
          const r = await recipe.stepOnInputsAsync(inputs, stepHyper);
          tf.dispose([
            r.studentProjection,
            r.teacherProjection,
            r.reconstructionImages,
            ...Object.values(r.grads),
          ]);
        };
        await step();
        const count = tf.memory().numTensors;
        await step();
        await step();
        expect(tf.memory().numTensors).toBe(count);
        // The scaler's state is saved with the recipe and restored.
        const state = recipe.saveState();
        expect(state.meta.lossScaler).toEqual(scaler.state());
        const other = sitFromFixture("mixed-f16");
        other.recipe.loadState(state);
        expect(other.recipe.lossScaler!.state()).toEqual(scaler.state());
        tf.dispose([
          ...Object.values(f),
          ...Object.values(inputs).flat(),
          ...Object.values(other.f),
          ...Object.values(other.inputs).flat(),
        ]);
        other.recipe.dispose();
        recipe.dispose();
      },
    );
  },
);

describe("SiT mixed precision refusals", () => {
  it("refuses mixed-f16 on a backend without shader-f16, naming the option, value and backend", async () => {
    await tf.setBackend("cpu");
    expect(() => sitFromFixture("mixed-f16")).toThrow(
      'precision: "mixed-f16" needs the webgpu backend with an adapter that has the shader-f16 feature, but the backend is cpu; use "f32" there',
    );
  });
});
