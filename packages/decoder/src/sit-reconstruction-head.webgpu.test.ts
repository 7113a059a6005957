import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { setWebgpuKernels } from "@sit/kernels";
import { expectClose, useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { SitReconstructionHead } from "./sit-reconstruction-head";

afterAll(async () => {
  setWebgpuKernels(true);
  await tf.setBackend("cpu");
});

// D 70 and p·p·C = 48 cross the GEMM's 64-wide tiles; 2 × 9 tokens on a 3 × 3 grid.
const [B, GRID, D, P] = [2, 3, 70, 4];

/** Σ x̂·R, then the gradients of the tokens and of every parameter, as plain arrays. */
async function run(): Promise<Float32Array[]> {
  const head = new SitReconstructionHead({ embedDim: D, patchSize: P, rng: Rng.seed(2) });
  const n = B * GRID * GRID * D;
  const tokens = tf.tensor3d(Rng.seed(3).fillNormal(new Float32Array(n), 0, 1), [
    B,
    GRID * GRID,
    D,
  ]);
  const side = GRID * P;
  const r = tf.tensor4d(Rng.seed(4).fillNormal(new Float32Array(B * side * side * 3), 0, 1), [
    B,
    side,
    side,
    3,
  ]);
  const params = head.parameters();
  const out = tf.tidy(() => {
    const f = (t: tf.Tensor) => tf.sum(tf.mul(head.apply(t, [GRID, GRID]), r)) as tf.Scalar;
    const { value, grads } = tf.variableGrads(() => f(tokens), params);
    const dTokens = tf.grads(f)([tokens])[0];
    return [value, dTokens, ...params.map((p) => grads[p.name])];
  });
  const data = await Promise.all(out.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose([...out, tokens, r]);
  head.dispose();
  return data;
}

describe("SitReconstructionHead on webgpu (GELU in the next GEMM's prologue, fused unpatchify + bias)", () => {
  it("matches the portable head on webgpu: output 1e-5, every gradient 1e-4, and runs no GELU kernel", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    setWebgpuKernels(false);
    const portable = await run();
    setWebgpuKernels(true);
    const info = await tf.profile(async () => {
      const fused = await run();
      expectClose(fused[0], portable[0], 1e-5, "output", 1e-6);
      for (let i = 1; i < fused.length; i++)
        expectClose(fused[i], portable[i], 1e-4, `gradient ${i}`, 1e-6);
    });
    const names = info.kernels.map((k) => k.name);
    expect(names.filter((k) => k.includes("Gelu"))).toEqual([]);
    expect(names).toContain("SitUnpatchifyBias");
    expect(names).toContain("SitUnpatchifyBiasGrad");
    // No leak on webgpu: a second and third run leave the tensor count where the first left it.
    await run();
    const before = tf.memory().numTensors;
    await run();
    expect(tf.memory().numTensors).toBe(before);
    expect(names.filter((k) => k === "SitLinear").length).toBeGreaterThanOrEqual(4);
  });
});
