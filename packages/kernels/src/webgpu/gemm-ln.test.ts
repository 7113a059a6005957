import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { webgpuHasShaderF16 } from "../precision";
import { portableTransformerBlock, transformerBlock } from "../transformer-block";
import { B, D, HEADS, N, flat, weights } from "./block-fixtures";
import { PLAIN_GEMM, setWebgpuGemmTile } from "./gemm";
import { webgpuGemmLayerNorm } from "./gemm-ln";
import { setGemmSplitK, splitKFor } from "./gemm-split";
import { checkGemmVariant, gemmBindings, gemmKey } from "./gemm-wgsl";
import { countLaunches, f16Round, fill, onCpu, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});
afterEach(() => {
  setWebgpuGemmTile("auto");
  setGemmSplitK("auto");
});

const EPS = 1e-5;

/** Inputs of `LN(x)·w + bias + r`: x with a mean far from 0 (what Welford's merge is for). */
function make([M, K, N]: readonly number[]) {
  return {
    x: tf.tidy(() => tf.add(fill([M, K], 1, 2), 3)) as tf.Tensor2D,
    w: fill([K, N], 2, 0.3) as tf.Tensor2D,
    gamma: tf.tidy(() => tf.add(fill([K], 3, 0.2), 1)) as tf.Tensor1D,
    beta: fill([K], 4, 0.5) as tf.Tensor1D,
    bias: fill([N], 5) as tf.Tensor1D,
    r: fill([M, N], 6) as tf.Tensor2D,
  };
}

/** LayerNorm over the last axis as tfjs computes it (moments: biased variance). */
function tfLayerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, EPS))), gamma), beta);
}

// Each tile forced, on shapes that cross its edges in every dimension (64 × 64 × 16: [70, 37, 67];
// 128 × 128 × 8: [130, 37, 200]; K not a multiple of the 16 statistics lanes), and a product
// smaller than one tile with K < BK.
describe.each([
  { tile: "64", shape: [70, 37, 67] },
  { tile: "128", shape: [130, 37, 200] },
  { tile: "128", shape: [5, 9, 3] },
] as const)(
  "webgpu GEMM with the LayerNorm prologue, tile $tile, [M, K, N] = $shape",
  ({ tile, shape }) => {
    it("matches tfjs's moments-LayerNorm then matMul (with and without bias, residual, LN output)", async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      setWebgpuGemmTile(tile);
      const reference = await onCpu(() => {
        const { x, w, gamma, beta, bias, r } = make(shape);
        const ln = tfLayerNorm(x, gamma, beta);
        const product = tf.matMul(ln, w);
        return [tf.add(tf.add(product, bias), r), product, ln];
      });
      const { x, w, gamma, beta, bias, r } = make(shape);
      const [fused, y] = webgpuGemmLayerNorm(x, w, gamma, beta, {
        epsilon: EPS,
        bias,
        residual: r,
        lnOut: true,
      });
      const [plain, ...none] = webgpuGemmLayerNorm(x, w, gamma, beta, { epsilon: EPS });
      expect(none).toEqual([]);
      expectClose(await fused.data(), reference[0], 1e-5, "LN(x)·w + bias + r");
      expectClose(await y.data(), reference[2], 1e-5, "LN(x) (lnOut)");
      expectClose(await plain.data(), reference[1], 1e-5, "LN(x)·w");
      tf.dispose([x, w, gamma, beta, bias, r, fused, y, plain]);
    }, 600_000);
  },
);

describe("webgpu GEMM with the LayerNorm prologue", () => {
  it("keeps the other variants' keys, adds its bindings in a fixed order, and rejects contradictory flags", () => {
    expect(gemmKey(PLAIN_GEMM)).toBe("SitGemm_000000000");
    expect(gemmKey({ ...PLAIN_GEMM, bias: true, half: [] }, 128)).toBe("SitGemm_000100000_h_t128");
    const ln = { ...PLAIN_GEMM, lnA: true, bias: true, residual: true };
    expect(gemmKey(ln)).toBe("SitGemm_000101000_ln");
    expect(gemmKey({ ...ln, lnOut: true }, 128)).toBe("SitGemm_000101000_lnY_t128");
    expect(gemmBindings({ ...ln, lnOut: true })).toEqual([
      "A",
      "B",
      "Gamma",
      "Beta",
      "Bias",
      "R",
      "C",
      "Y",
    ]);
    expect(() => checkGemmVariant({ ...ln, transA: true })).toThrow(
      /GEMM variant SitGemm_100101000_ln: lnA .* cannot be combined with transA/,
    );
    expect(() => checkGemmVariant({ ...ln, geluA: true })).toThrow(
      /GEMM variant SitGemm_001101000_ln: lnA and geluA/,
    );
    expect(() => checkGemmVariant({ ...PLAIN_GEMM, lnOut: true })).toThrow(
      /GEMM variant SitGemm_000000000_Y: lnOut .* needs lnA/,
    );
  });

  it("is never split along K, even when a split is forced", () => {
    const ln = { ...PLAIN_GEMM, lnA: true };
    expect(splitKFor(PLAIN_GEMM, 64, 64, 100_000).slices).toBeGreaterThan(1);
    expect(splitKFor(ln, 64, 64, 100_000)).toEqual({ kSplit: 100_000, slices: 1 });
    setGemmSplitK(4);
    expect(splitKFor(ln, 64, 64, 100_000)).toEqual({ kSplit: 100_000, slices: 1 });
  });

  it("runs in one dispatch and rejects bad input naming the argument", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const { x, w, gamma, beta, bias, r } = make([6, 5, 4]);
    const launches = await countLaunches(() =>
      webgpuGemmLayerNorm(x, w, gamma, beta, { epsilon: EPS, bias, lnOut: true }),
    );
    expect(launches).toEqual({ dispatches: 1, kernels: ["SitGemmLayerNorm"] });
    expect(() => webgpuGemmLayerNorm(x, w, beta.slice(1), beta, { epsilon: EPS })).toThrow(
      /gemmLayerNorm gamma: expected a tensor of shape \[5\]/,
    );
    expect(() => webgpuGemmLayerNorm(x, w, gamma, beta, { epsilon: EPS, residual: x })).toThrow(
      /gemmLayerNorm residual: expected a tensor of shape \[6,4\]/,
    );
    tf.dispose([x, w, gamma, beta, bias, r]);
  });

  // Mixed precision (the block's qkv GEMM: storage f32, operands rounded to f16 as loaded): an f64
  // reference of LN, the operands rounded to f16, exact sums, and gemm-half.test.ts's bound — half
  // an f16 ulp of the result, the f32 accumulation, one f16 ulp of each LN(x) element (the GPU's
  // f32 LayerNorm may land on the other side of a rounding boundary).
  for (const { tile, shape } of [
    { tile: "64", shape: [70, 37, 67] },
    { tile: "128", shape: [130, 37, 200] },
  ] as const)
    it(`mixed f16 (tile ${tile}): within the f16 bound of an f64 reference; LN(x) in f32`, async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      if (!webgpuHasShaderF16()) {
        console.warn("[skip] f16 specs: the WebGPU adapter has no shader-f16");
        ctx.skip();
        return;
      }
      setWebgpuGemmTile(tile);
      const [M, K, N] = shape;
      const { x, w, gamma, beta, bias, r } = make(shape);
      const [c, y] = webgpuGemmLayerNorm(x, w, gamma, beta, {
        epsilon: EPS,
        bias,
        lnOut: true,
        half: true,
      });
      const [xv, wv, gv, bv, biasv] = await Promise.all(
        [x, w, gamma, beta, bias].map(async (t) => (await t.data()) as Float32Array),
      );
      const ln = new Float64Array(M * K);
      for (let i = 0; i < M; i++) {
        const row = xv.subarray(i * K, (i + 1) * K);
        const mean = row.reduce((p, q) => p + q, 0) / K;
        const variance = row.reduce((p, q) => p + (q - mean) ** 2, 0) / K;
        for (let p = 0; p < K; p++)
          ln[i * K + p] = ((row[p] - mean) / Math.sqrt(variance + EPS)) * gv[p] + bv[p];
      }
      const got = (await c.data()) as Float32Array;
      let worst = -Infinity;
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          let abs = 0;
          for (let p = 0; p < K; p++) {
            const term = f16Round(ln[i * K + p]) * f16Round(wv[p * N + j]);
            s += term;
            abs += Math.abs(term);
          }
          const out = s + f16Round(biasv[j]);
          const tol =
            2 ** -11 * Math.abs(out) +
            (K + 2) * 2 ** -24 * (abs + Math.abs(biasv[j])) +
            2 ** -10 * abs;
          worst = Math.max(worst, Math.abs(got[i * N + j] - out) - tol);
        }
      expect(worst, "f16 LN(x)·w + bias beyond its bound").toBeLessThanOrEqual(0);
      expectClose(await y.data(), ln, 1e-5, "LN(x) (lnOut, f32 storage)");
      tf.dispose([x, w, gamma, beta, bias, r, c, y]);
    }, 600_000);

  // The fused block's specs (block.test.ts) run under a tape, where the prologues also write LN(x)
  // for the backward; without one (inference, a teacher) they write nothing else.
  it("serves the fused block's forward without a tape (no LN output): matches the portable block", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const w = weights(50);
    const x = fill([B, N, D], 7);
    const forward = (block: typeof transformerBlock) =>
      tf.tidy(() => block(x as tf.Tensor3D, w, { numHeads: HEADS }).output);
    const fused = forward(transformerBlock);
    const portable = forward(portableTransformerBlock);
    expectClose(await fused.data(), await portable.data(), 1e-5, "block output", 1e-6);
    tf.dispose([x, fused, portable, ...flat(w).map(([, t]) => t)]);
  }, 240_000);
});
