import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { portableGelu } from "../gelu";
import { checkWebgpuShaders, rawDispatchCount } from "./flat-buffers";
import { webgpuGemm } from "./gemm";
import { webgpuFusedLinear } from "./gemm-linear";
import { setGemmSplitK, splitKFor } from "./gemm-split";
import { PLAIN_GEMM } from "./gemm";
import { fill, onCpu, useWebgpu } from "./testing";

afterEach(() => setGemmSplitK("auto"));
afterAll(async () => {
  await tf.setBackend("cpu");
});

const DW = { ...PLAIN_GEMM, transA: true, colSum: true };

describe("split-K GEMM (weight gradients with few output tiles)", () => {
  it("splits only long-K products with few tiles and no epilogue, in slices of whole BK steps", () => {
    // ViT-Tiny/4 batch 256, both views: dW of qkv is [192, 576] over 33,280 token rows (27 tiles).
    const qkv = splitKFor(DW, 192, 576, 33_280);
    expect(qkv.slices).toBeGreaterThan(1);
    expect(qkv.kSplit % 16).toBe(0);
    expect(qkv.kSplit * qkv.slices).toBeGreaterThanOrEqual(33_280);
    expect(qkv.kSplit * (qkv.slices - 1)).toBeLessThan(33_280);
    expect(qkv.kSplit).toBeGreaterThanOrEqual(512);
    // A forward product has thousands of tiles: never split. Nor a short K, nor an epilogue that
    // must follow the whole sum, nor the f16 GEMM.
    expect(splitKFor(PLAIN_GEMM, 33_280, 576, 192).slices).toBe(1);
    expect(splitKFor(DW, 192, 576, 600).slices).toBe(1);
    expect(splitKFor({ ...DW, bias: true }, 192, 576, 33_280).slices).toBe(1);
    expect(splitKFor({ ...DW, residual: true }, 192, 576, 33_280).slices).toBe(1);
    expect(splitKFor({ ...DW, half: [] }, 192, 576, 33_280).slices).toBe(1);
    expect(() => setGemmSplitK(0)).toThrow(/slices: expected "auto" or an integer ≥ 1, got 0/);
  });

  it("gives tfjs's matMul for every transpose pair with ragged slices, and one more dispatch than unsplit", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // K = 1,000 in slices of 208 (the last one short), M and N across the 64-wide tiles.
    const [M, N, K] = [70, 67, 1000];
    for (const [ta, tb] of [
      [true, false],
      [false, false],
      [false, true],
      [true, true],
    ]) {
      const shapes = [ta ? [K, M] : [M, K], tb ? [N, K] : [K, N]];
      const reference = await onCpu(() => [
        tf.matMul(fill(shapes[0], 1), fill(shapes[1], 2), ta, tb),
      ]);
      const a = fill(shapes[0], 1) as tf.Tensor2D;
      const b = fill(shapes[1], 2) as tf.Tensor2D;
      const dispatches = async (slices: number) => {
        setGemmSplitK(slices);
        const raw0 = rawDispatchCount();
        const c = webgpuGemm(a, b, { transposeA: ta, transposeB: tb });
        const n = rawDispatchCount() - raw0;
        const data = await c.data();
        c.dispose();
        return { n, data };
      };
      const one = await dispatches(1);
      const five = await dispatches(5);
      await checkWebgpuShaders();
      expect(one.n).toBe(1);
      expect(five.n).toBe(2);
      expectClose(one.data, reference[0], 1e-5, `unsplit ${ta} ${tb}`, 1e-6);
      expectClose(five.data, reference[0], 1e-5, `split in 5 ${ta} ${tb}`, 1e-6);
      tf.dispose([a, b]);
    }
  });

  it("splits a linear layer's weight and bias gradients (GELU prologue, row factors) exactly as unsplit", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // x [B, T, in] with B·T = 1,200 rows; dW = gelu(x)ᵀ·(s·dy), db = Σ s·dy.
    const [B, T, IN, OUT] = [4, 300, 40, 72];
    const x = fill([B, T, IN], 3);
    const w = fill([IN, OUT], 4, 0.2);
    const bias = fill([OUT], 5);
    const dy = fill([B, T, OUT], 6);
    const s = tf.tensor1d([2, 0, 2, 1]);
    const grads = () =>
      tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
        tf.sum(tf.mul(webgpuFusedLinear(xi, wi, bi, { geluInput: true, rowScale: s }), dy)),
      )([x, w, bias]);
    const reference = await onCpu(() => {
      const xs = [x, w, bias, dy, s].map((t) => tf.tensor(t.arraySync() as number[], t.shape));
      const [xc, wc, bc, dyc, sc] = xs;
      return tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
        const y = tf.add(tf.matMul(portableGelu(xi).reshape([B * T, IN]), wi), bi);
        const scaled = tf.mul(y.reshape([B, T, OUT]), sc.reshape([B, 1, 1]));
        return tf.sum(tf.mul(scaled, dyc));
      })([xc, wc, bc]);
    });
    for (const slices of [1, 3]) {
      setGemmSplitK(slices);
      const got = grads();
      const data = await Promise.all(got.map((g) => g.data()));
      tf.dispose(got);
      expectClose(data[1], reference[1], 1e-4, `dW, ${slices} slice(s)`, 1e-6);
      expectClose(data[2], reference[2], 1e-4, `db, ${slices} slice(s)`, 1e-6);
      expectClose(data[0], reference[0], 1e-4, `dx, ${slices} slice(s)`, 1e-6);
    }
    await checkWebgpuShaders();
    tf.dispose([x, w, bias, dy, s]);
  });

  it("leaks no tensor and no pooled bytes across split products", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    setGemmSplitK(4);
    const a = fill([800, 64], 7) as tf.Tensor2D;
    const b = fill([800, 96], 8) as tf.Tensor2D;
    const run = async () => {
      const c = webgpuGemm(a, b, { transposeA: true });
      await c.data();
      c.dispose();
      return [tf.memory().numTensors, (tf.memory() as { numBytesInGPU?: number }).numBytesInGPU];
    };
    const first = await run();
    for (let i = 0; i < 3; i++) expect(await run()).toEqual(first);
    tf.dispose([a, b]);
  });
});
