import * as tf from "@tensorflow/tfjs";
import { maxRelativeError } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { webgpuHasShaderF16, withPrecision } from "../precision";
import { transformerBlock } from "../transformer-block";
import { B, D, HEADS, N, flat, run, weights } from "./block-fixtures";
import { checkWebgpuShaders, rawDispatchCount } from "./flat-buffers";
import { fill, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

async function useF16(ctx: { skip: () => void }): Promise<boolean> {
  if (!(await useWebgpu(ctx))) return false;
  if (webgpuHasShaderF16()) return true;
  console.warn("[skip] f16 specs: the WebGPU adapter has no shader-f16");
  ctx.skip();
  return false;
}

/** max |a − b| / max |b|: the error relative to the tensor's scale. */
const scaledError = (a: Float32Array, b: Float32Array) => maxRelativeError(a, b);

// f16 keeps 11 significant bits (unit roundoff u = 2⁻¹¹ ≈ 4.9e-4). Each GEMM rounds its operands
// and its result, and a gradient here passes through up to four of them and the attention
// backward, so its error is a small multiple of u times the tensor's scale: 1e-2 (≈ 20 u) bounds
// it, with the f32 parts (LayerNorm, softmax, residual stream) exact to f32. The lower bound (5 u⁄100)
// shows that the f16 path really ran: the f32 block agrees with itself to ≈ 1e-6.
const F16_BOUND = 1e-2;
const F16_FLOOR = 2.5e-5;

describe("fused transformer block in mixed precision (shader-f16)", () => {
  it.for([
    ["no drop path", false],
    ["drop path", true],
  ] as const)(
    "forward and every gradient match the f32 block within f16's bound (%s)",
    { timeout: 240_000 },
    async ([, drop], ctx) => {
      if (!(await useF16(ctx))) return;
      const w = weights(10);
      const f32 = await run(transformerBlock, w, drop);
      const half = await run(
        (x, ws, o) => withPrecision("mixed-f16", () => transformerBlock(x, ws, o)),
        w,
        drop,
      );
      await checkWebgpuShaders();
      for (let i = 0; i < f32.data.length; i++) {
        const label = i === 0 ? "output" : `grad ${f32.names[i - 1]}`;
        const err = scaledError(half.data[i], f32.data[i]);
        expect(err, label).toBeLessThanOrEqual(F16_BOUND);
        // The LayerNorm parameters' gradients and x's pass through f16 GEMMs too.
        expect(err, `${label} (f16 used)`).toBeGreaterThan(F16_FLOOR);
      }
      tf.dispose(flat(w).map(([, t]) => t));
    },
  );

  it("has the f32 block's dispatches (5 + 13) and leaks nothing", async (ctx) => {
    if (!(await useF16(ctx))) return;
    const w = weights(20);
    const x = fill([B, N, D], 3);
    const block = (xi: tf.Tensor) => transformerBlock(xi as tf.Tensor3D, w, { numHeads: HEADS });
    const step = () =>
      withPrecision("mixed-f16", () =>
        tf.tidy(() => tf.grads((xi: tf.Tensor) => tf.sum(block(xi).output))([x])[0]),
      );
    tf.dispose(step());
    const raw0 = rawDispatchCount();
    tf.dispose(step());
    expect(rawDispatchCount() - raw0).toBe(5 + 13);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(step());
    expect(tf.memory().numTensors).toBe(before);
    await checkWebgpuShaders();
    tf.dispose([x, ...flat(w).map(([, t]) => t)]);
  });
});
