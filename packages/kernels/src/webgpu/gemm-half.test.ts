import * as tf from "@tensorflow/tfjs";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { checkWebgpuShaders } from "./flat-buffers";
import { assertMixedPrecision, webgpuHasShaderF16 } from "../precision";
import { setWebgpuGemmTile } from "./gemm";
import { webgpuFromHalf, webgpuGemmHalf, webgpuToHalf } from "./gemm-half";
import { f16Round, fill, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

/** Switch to webgpu; skip (with the reason) where the adapter lacks shader-f16. */
async function useF16(ctx: { skip: () => void }): Promise<boolean> {
  if (!(await useWebgpu(ctx))) return false;
  if (webgpuHasShaderF16()) return true;
  console.warn("[skip] f16 specs: the WebGPU adapter has no shader-f16");
  ctx.skip();
  return false;
}

const U = 2 ** -24; // f32 unit roundoff

/** Exact GELU x·Φ(x) in f64: erf by its Taylor series up to 3, erfc's continued fraction beyond. */
function gelu(x: number): number {
  const z = x / Math.SQRT2;
  const erf = (t: number): number => {
    if (Math.abs(t) > 3) return Math.sign(t) * (1 - erfcTail(Math.abs(t)));
    let sum = 0;
    let term = t;
    for (let n = 0; n < 80; n++) {
      sum += term / (2 * n + 1);
      term *= (-t * t) / (n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  };
  return 0.5 * x * (1 + erf(z));
}
function erfcTail(t: number): number {
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  return Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
}

/**
 * f64 reference of the f16 GEMM: operands rounded to f16 (after GELU), exact products and sums,
 * and the bound on the distance of a correct result from it: half an f16 ulp of the result
 * (2⁻¹¹ relative: the final rounding), the f32 accumulation over K terms (≤ (K + 2)·2⁻²⁴·Σ|a·b|;
 * products of f16 values are exact in f32), plus, with the GELU prologue, one f16 ulp of each A
 * element (2⁻¹⁰·Σ|a·b|: the GPU's f32 GELU may land on the other side of a rounding boundary).
 * Assumes round-to-nearest-even f32 → f16 conversion, which WGSL permits and lavapipe does.
 */
function reference(
  a: Float32Array,
  b: Float32Array,
  bias: Float32Array | null,
  [m, n, k]: number[],
  ta: boolean,
  tb: boolean,
  geluA: boolean,
) {
  const ref = new Float64Array(m * n);
  const tol = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      let abs = 0;
      for (let p = 0; p < k; p++) {
        const av = a[ta ? p * m + i : i * k + p];
        const x = f16Round(geluA ? gelu(av) : av);
        const y = f16Round(b[tb ? j * k + p : p * n + j]);
        s += x * y;
        abs += Math.abs(x * y);
      }
      const out = s + (bias ? f16Round(bias[j]) : 0);
      ref[i * n + j] = out;
      tol[i * n + j] =
        2 ** -11 * Math.abs(out) +
        (k + 2) * U * (abs + Math.abs(bias?.[j] ?? 0)) +
        (geluA ? 2 ** -10 * abs : 0);
    }
  return { ref, tol };
}

function expectWithin(got: Float32Array, ref: Float64Array, tol: Float64Array, label: string) {
  let worst = -Infinity;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    const excess = Math.abs(got[i] - ref[i]) - tol[i];
    if (!(excess <= worst) && (excess > worst || Number.isNaN(excess))) {
      worst = Number.isNaN(excess) ? Infinity : excess;
      at = i;
    }
  }
  expect(
    worst <= 0,
    `${label}: element ${at} got ${got[at]}, reference ${ref[at]} ± ${tol[at]}`,
  ).toBe(true);
}

afterEach(() => setWebgpuGemmTile("auto"));

describe("webgpu mixed-precision GEMM (shader-f16)", () => {
  // Each tile forced, on shapes that cross its edges in every dimension (64 × 64 × 16 and
  // 128 × 128 × 8).
  const cases = [
    { tile: "64", shape: [70, 37, 67] },
    { tile: "128", shape: [130, 37, 200] },
  ] as const;
  for (const { tile, shape } of cases)
    it(`rounds operands to f16, accumulates in f32 and rounds the result: within the f16 bound of an f64 reference (tile ${tile}, [M, K, N] = [${shape}])`, async (ctx) => {
      if (!(await useF16(ctx))) return;
      setWebgpuGemmTile(tile);
      const [M, K, N] = shape;
      // Each transpose pair; operands from f32 storage (rounded as loaded) and from f16 storage.
      for (const [ta, tb, geluA, withBias] of [
        [false, false, true, true],
        [true, false, false, false],
        [false, true, false, true],
        [true, true, true, false],
      ]) {
        const a = fill(ta ? [K, M] : [M, K], 1) as tf.Tensor2D;
        const b = fill(tb ? [N, K] : [K, N], 2) as tf.Tensor2D;
        const bias = withBias ? (fill([N], 3) as tf.Tensor1D) : null;
        const [av, bv] = [(await a.data()) as Float32Array, (await b.data()) as Float32Array];
        const biasv = bias ? ((await bias.data()) as Float32Array) : null;
        const { ref, tol } = reference(av, bv, biasv, [M, N, K], ta, tb, geluA);
        const opts = { transposeA: ta, transposeB: tb, geluA, bias };
        const fromF32 = webgpuGemmHalf(a, b, { ...opts, outF32: true });
        const [ah, bh] = [webgpuToHalf(a), webgpuToHalf(b)];
        const fromHalf = webgpuGemmHalf(ah, bh, opts);
        const back = webgpuFromHalf(fromHalf);
        const label = `ta=${ta} tb=${tb} gelu=${geluA} bias=${withBias}`;
        await checkWebgpuShaders();
        const got = (await fromF32.data()) as Float32Array;
        expectWithin(got, ref, tol, `f32-stored ${label}`);
        // From f16 storage the GEMM sees f16(a) (the GELU prologue then acts on f16 values, as
        // autocast's GELU on an f16 tensor does): its own reference; without GELU the rounding only
        // moved (toHalf instead of the tile load), so the values are identical.
        const stored = reference(av.map(f16Round), bv, biasv, [M, N, K], ta, tb, geluA);
        const gotHalf = (await back.data()) as Float32Array;
        expectWithin(gotHalf, stored.ref, stored.tol, `f16-stored ${label}`);
        if (!geluA) expect(Array.from(gotHalf)).toEqual(Array.from(got));
        // And it is f16: against the unrounded operands the error is far above an f32 GEMM's.
        if (!geluA) {
          let worst = 0;
          for (let i = 0; i < M; i++)
            for (let j = 0; j < N; j++) {
              let exact = biasv ? biasv[j] : 0;
              for (let p = 0; p < K; p++)
                exact += av[ta ? p * M + i : i * K + p] * bv[tb ? j * K + p : p * N + j];
              worst = Math.max(worst, Math.abs(got[i * N + j] - exact));
            }
          expect(worst, label).toBeGreaterThan(1e-3);
        }
        tf.dispose([a, b, fromF32, ah.data, bh.data, fromHalf.data, back]);
        if (bias) bias.dispose();
      }
      await checkWebgpuShaders();
    }, 600_000);

  it("converts to and from f16 with IEEE rounding, overflow to ±inf and NaN kept; a GEMM overflows to inf", async (ctx) => {
    if (!(await useF16(ctx))) return;
    const values = [
      1,
      1 / 3,
      -0.1,
      65504,
      65519,
      65520,
      1e6,
      -1e6,
      Number.NaN,
      2 ** -14,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
    ];
    const x = tf.tensor1d(values);
    const h = webgpuToHalf(x);
    const back = webgpuFromHalf(h);
    expect(Array.from((await back.data()) as Float32Array)).toEqual(
      values.map((v) => f16Round(Math.fround(v))),
    );
    // 300 · 300 = 90000 > 65504: the f16 result is inf (what a loss scaler detects).
    const a = tf.tensor2d([[300, -300]]);
    const b = tf.tensor2d([[300], [0]]);
    const c = webgpuGemmHalf(a, b, { outF32: true });
    const d = webgpuGemmHalf(a, b, { transposeA: true, transposeB: true, outF32: true });
    expect(Array.from(await c.data())).toEqual([Number.POSITIVE_INFINITY]);
    expect(Array.from(await d.data())).toEqual([
      Number.POSITIVE_INFINITY,
      0,
      Number.NEGATIVE_INFINITY,
      0,
    ]);
    tf.dispose([x, h.data, back, a, b, c, d]);
  }, 120_000);

  it("leaks no tensor across repeated calls, and rejects bad input naming the argument", async (ctx) => {
    if (!(await useF16(ctx))) return;
    const [a, b] = [fill([5, 4], 1) as tf.Tensor2D, fill([4, 3], 2) as tf.Tensor2D];
    const run = () => {
      const ah = webgpuToHalf(a);
      const h = webgpuGemmHalf(ah, b);
      const out = webgpuFromHalf(h);
      tf.dispose([ah.data, h.data, out]);
    };
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => webgpuGemmHalf(a, a)).toThrow(/gemmHalf b: expected 4 along its first axis/);
    expect(() => webgpuFromHalf({ data: tf.zeros([2]) as tf.Tensor1D, shape: [7] })).toThrow(
      /fromHalf h: expected a HalfTensor/,
    );
    tf.dispose([a, b]);
  });

  it("names the option, the value and the backend when mixed precision cannot run", async () => {
    await tf.setBackend("cpu");
    expect(() => assertMixedPrecision("precision")).toThrow(
      'precision: "mixed-f16" needs the webgpu backend with an adapter that has the shader-f16 feature, but the backend is cpu; use "f32" there',
    );
    expect(webgpuHasShaderF16({ device: { features: new Set(["timestamp-query"]) } })).toBe(false);
  });
});
