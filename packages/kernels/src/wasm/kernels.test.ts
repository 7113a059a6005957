import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { gelu } from "../gelu";
import { layerNorm } from "../layer-norm";
import { linear } from "../linear";
import { portableKernels } from "../portable";
import { randomTensor } from "../testing/finite-difference";
import { columnSum, inputGradient, weightGradient } from "./linear";
import { setWasmKernels, wasmKernels } from "./register";
import { setHeapSlice } from "./slice";

// Every wasm override of the dense ops against the portable implementation, on wasm, forward and
// gradients (the attention overrides are tested in attention.test.ts).
describe("wasm linear, layerNorm and gelu", () => {
  // [rows, in, out]: a ViT-like shape, and a small batch through a wide weight (the projection
  // head's case, where the input gradient is formed as (w·dyᵀ)ᵀ).
  const linearCases: [number, number, number][] = [
    [37, 12, 20],
    [37, 20, 12],
    [3, 40, 48],
  ];

  it.each(linearCases)(
    "linear [%i × %i → %i] matches portable, with and without bias",
    async (m, i, o) => {
      await withBackend("wasm", () => {
        const rng = Rng.seed(50 + m);
        const x = randomTensor([m, i], rng) as tf.Tensor2D;
        const w = randomTensor([i, o], rng, 0.3) as tf.Tensor2D;
        const b = randomTensor([o], rng) as tf.Tensor1D;
        const dy = randomTensor([m, o], rng);
        for (const bias of [b, null]) {
          const f =
            (impl: typeof portableKernels.linear) =>
            (...a: tf.Tensor[]) =>
              impl(a[0] as tf.Tensor2D, a[1] as tf.Tensor2D, bias ? (a[2] as tf.Tensor1D) : null);
          const inputs = bias ? [x, w, bias] : [x, w];
          expectClose(
            f(wasmKernels.linear!)(...inputs),
            f(portableKernels.linear)(...inputs),
            1e-5,
            "y",
          );
          const gOurs = tf.grads(f(wasmKernels.linear!))(inputs, dy);
          const gRef = tf.grads(f(portableKernels.linear))(inputs, dy);
          expect(gOurs).toHaveLength(inputs.length);
          for (let k = 0; k < inputs.length; k++)
            expectClose(gOurs[k], gRef[k], 1e-4, `d ${["x", "w", "b"][k]}`, 1e-5);
          tf.dispose([...gOurs, ...gRef]);
        }
        // the public function routes to the override on wasm
        expectClose(linear(x, w, b), portableKernels.linear(x, w, b), 1e-5, "public");
        tf.dispose([x, w, b, dy]);
      });
    },
  );

  it("columnSum, inputGradient and weightGradient equal a Sum over rows, dy·wᵀ and xᵀ·dy", async () => {
    await withBackend("wasm", () => {
      const rng = Rng.seed(60);
      const x = randomTensor([9, 5], rng) as tf.Tensor2D;
      expectClose(columnSum(x), tf.sum(x, 0), 1e-5, "column sums", 1e-6);
      for (const [m, i, o] of [
        [9, 5, 4],
        [2, 30, 31],
        [1280, 128, 160], // long: the narrower operand is the packed one (both orientations below)
      ]) {
        const dy = randomTensor([m, o], rng) as tf.Tensor2D;
        const w = randomTensor([i, o], rng) as tf.Tensor2D;
        expectClose(inputGradient(dy, w), tf.matMul(dy, w, false, true), 1e-5, `dx ${m}`, 1e-6);
        const x2 = randomTensor([m, i], rng) as tf.Tensor2D;
        expectClose(weightGradient(x2, dy), tf.matMul(x2, dy, true, false), 1e-5, `dw ${m}`, 1e-6);
        expectClose(weightGradient(dy, x2), tf.matMul(dy, x2, true, false), 1e-5, `dwᵀ ${m}`, 1e-6);
        x2.dispose();
        tf.dispose([dy, w]);
      }
      x.dispose();
    });
  });

  it("layerNorm matches portable, forward and gradients", async () => {
    await withBackend("wasm", () => {
      const rng = Rng.seed(61);
      const x = randomTensor([33, 24], rng, 2) as tf.Tensor2D;
      const g = randomTensor([24], rng) as tf.Tensor1D;
      const b = randomTensor([24], rng) as tf.Tensor1D;
      const dy = randomTensor([33, 24], rng);
      const f =
        (impl: typeof portableKernels.layerNorm) =>
        (...a: tf.Tensor[]) =>
          impl(a[0] as tf.Tensor2D, a[1] as tf.Tensor1D, a[2] as tf.Tensor1D, 1e-6);
      expectClose(
        f(wasmKernels.layerNorm!)(x, g, b),
        f(portableKernels.layerNorm)(x, g, b),
        1e-5,
        "y",
        1e-6,
      );
      const gOurs = tf.grads(f(wasmKernels.layerNorm!))([x, g, b], dy);
      const gRef = tf.grads(f(portableKernels.layerNorm))([x, g, b], dy);
      for (let k = 0; k < 3; k++) expectClose(gOurs[k], gRef[k], 1e-4, `d ${"xgb"[k]}`, 1e-5);
      expectClose(
        layerNorm(x, g, b),
        portableKernels.layerNorm(x, g, b, 1e-6),
        1e-5,
        "public",
        1e-6,
      );
      tf.dispose([x, g, b, dy, ...gOurs, ...gRef]);
    });
  });

  it("gelu matches portable, forward and gradient, over the range that matters", async () => {
    await withBackend("wasm", () => {
      const rng = Rng.seed(62);
      // N(0, 3²) plus the tails: −9 (φ underflows in float32), large positive.
      const x = tf.concat([randomTensor([200], rng, 3), tf.tensor1d([-9, -6, -3, 0, 3, 6, 9])]);
      const dy = randomTensor([207], rng);
      const ours = wasmKernels.gelu!(x);
      const ref = portableKernels.gelu(x);
      expectClose(ours, ref, 1e-5, "y", 1e-7);
      const [gOurs] = tf.grads((t) => wasmKernels.gelu!(t))([x], dy);
      const [gRef] = tf.grads((t) => portableKernels.gelu(t))([x], dy);
      // absolute: exp(−x²/2) as elu(·)+1 is exact to float32 rounding of 1 (≈ 6e-8)
      expectClose(gOurs, gRef, 1e-5, "dx", 3e-7);
      expectClose(gelu(x), ref, 1e-5, "public", 1e-7);
      tf.dispose([x, dy, ours, ref, gOurs, gRef]);
    });
  });

  it("leak no tensors in forward + backward", async () => {
    await withBackend("wasm", () => {
      const rng = Rng.seed(63);
      const x = tf.variable(randomTensor([6, 8], rng));
      const w = tf.variable(randomTensor([8, 8], rng));
      const g = tf.variable(randomTensor([8], rng));
      const before = tf.memory().numTensors;
      for (let i = 0; i < 2; i++)
        tf.tidy(() => {
          const { grads } = tf.variableGrads(
            () => tf.sum(gelu(layerNorm(linear(x, w, g), g, g))) as tf.Scalar,
          );
          expect(Object.keys(grads)).toHaveLength(3);
        });
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w, g]);
    });
  });

  it("the sharing Identity: clones share the buffer once an override ran, and copy again when switched off", async () => {
    await withBackend("wasm", () => {
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      tf.dispose(gelu(x)); // the first override call installs the kernel
      const buffers = tf.memory().numDataBuffers;
      const c = tf.clone(x);
      expect(tf.memory().numDataBuffers).toBe(buffers); // no new buffer
      x.dispose();
      expect(Array.from(c.dataSync())).toEqual([1, 2, 3, 4, 5, 6]); // still alive after the source
      setWasmKernels(false);
      const buffers2 = tf.memory().numDataBuffers;
      const d = tf.clone(c);
      expect(tf.memory().numDataBuffers).toBe(buffers2 + 1); // tfjs's own copying kernel is back
      setWasmKernels(true);
      tf.dispose([c, d]);
    });
  });

  it("the heap-to-heap Slice equals tfjs's kernel on contiguous and strided slices", async () => {
    await withBackend("wasm", () => {
      const rng = Rng.seed(64);
      const x = randomTensor([3, 4, 5, 6], rng);
      const xi = tf.cast(x, "int32");
      const cases: [number[], number[]][] = [
        [
          [1, 0, 0, 0],
          [1, 4, 5, 6],
        ], // contiguous (leading axis)
        [
          [0, 2, 0, 0],
          [2, 1, 5, 6],
        ], // strided
        [
          [2, 3, 1, 0],
          [1, 1, 3, 6],
        ], // contiguous inner run
      ];
      const run = () => cases.flatMap(([b, sz]) => [tf.slice(x, b, sz), tf.slice(xi, b, sz)]);
      setHeapSlice(false);
      const ref = run();
      setHeapSlice(true);
      const ours = run();
      for (let i = 0; i < ref.length; i++) {
        expect(ours[i].shape).toEqual(ref[i].shape);
        expect(Array.from(ours[i].dataSync())).toEqual(Array.from(ref[i].dataSync()));
      }
      tf.dispose([x, xi, ...ref, ...ours]);
    });
  });
});
