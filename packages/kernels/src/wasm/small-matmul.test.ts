import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { portableKernels } from "../portable";
import { randomTensor } from "../testing/finite-difference";
import { flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";
import { SMALL_MATMUL_KERNEL, heapSmallMatMul } from "./heap-ops";
import { SMALL_PRODUCT_MIN_WEIGHT, SMALL_PRODUCT_ROWS } from "./linear";
import { wasmKernels } from "./register";

// The few-rows product over the heap (matmul-kernels.wat) against tfjs's matMul and its own
// JavaScript twin, and wasmLinear's choice between it and XNNPACK.

describe("wasm heap few-rows product", () => {
  it("SIMD and JavaScript give identical results, close to matMul + bias", async () => {
    await withBackend("wasm", () => {
      const heap = WasmHeap.active();
      const rng = Rng.seed(41);
      // K with and without a remainder after blocks of 4; N across a 256-column chunk boundary.
      for (const [m, k, n, withBias] of [
        [1, 8, 4, true],
        [5, 13, 300, true],
        [17, 6, 516, false],
        [3, 130, 1024, true],
      ] as [number, number, number, boolean][]) {
        const x = randomTensor([m, k], rng) as tf.Tensor2D;
        const w = randomTensor([k, n], rng) as tf.Tensor2D;
        const b = withBias ? (randomTensor([n], rng) as tf.Tensor1D) : undefined;
        const outs = (["simd", "js"] as const).map((kind) => {
          const out = tf.zeros([m, n]).add(0);
          flatKernels(heap, kind).smallMatMul({
            ...{ out: heap.offset(out), x: heap.offset(x), w: heap.offset(w) },
            ...{ bias: b ? heap.offset(b) : null, m, k, n },
          });
          const v = Array.from(out.dataSync());
          out.dispose();
          return v;
        });
        expect(flatKernels(heap).kind).toBe("simd");
        expect(outs[0]).toEqual(outs[1]);
        const n0 = tf.memory().numTensors;
        const y = heapSmallMatMul(x, w, b);
        expect(tf.memory().numTensors).toBe(n0 + 1);
        expect(Array.from(y.dataSync())).toEqual(outs[0]);
        const ref = b ? tf.add(tf.matMul(x, w), b) : tf.matMul(x, w);
        expectClose(y, ref, 1e-5, `[${m}, ${k}]·[${k}, ${n}]`, 1e-5);
        tf.dispose([x, w, y, ref, ...(b ? [b] : [])]);
      }
    });
  });

  it("rejects mismatched shapes, naming them", async () => {
    await withBackend("wasm", () => {
      const [x, w] = [tf.zeros([2, 3]) as tf.Tensor2D, tf.zeros([3, 6]) as tf.Tensor2D];
      expect(() => heapSmallMatMul(x, w)).toThrow(/N a multiple of 4.*w \[3,6\]/);
      tf.dispose([x, w]);
    });
  });

  it("wasmLinear takes it for a weight changed in place, XNNPACK otherwise; gradients unchanged", async () => {
    await withBackend("wasm", () => {
      const heap = WasmHeap.active();
      const rng = Rng.seed(42);
      const [inF, outF] = [1024, SMALL_PRODUCT_MIN_WEIGHT / 1024];
      const w = tf.variable(randomTensor([inF, outF], rng, 0.03)) as tf.Variable<tf.Rank.R2>;
      const b = randomTensor([outF], rng) as tf.Tensor1D;
      const x = randomTensor([3, inF], rng) as tf.Tensor2D;
      const dy = randomTensor([3, outF], rng) as tf.Tensor2D;
      const kernelsOf = async (f: () => tf.Tensor) => {
        const info = await tf.profile(() => f());
        (info.result as tf.Tensor).dispose();
        return info.kernels.map((k) => k.name);
      };
      const linear = () => wasmKernels.linear!(x, w, b);
      // Never changed in place: XNNPACK (which then keeps it packed).
      return (async () => {
        expect(await kernelsOf(linear)).not.toContain(SMALL_MATMUL_KERNEL);
        heap.changed(w); // as AdamW does after an in-place update
        const names = await kernelsOf(linear);
        expect(names).toContain(SMALL_MATMUL_KERNEL);
        expect(names.filter((k) => /MatMul/.test(k))).toEqual([SMALL_MATMUL_KERNEL]);
        // More rows than the threshold: XNNPACK even so, and it holds the weight packed again.
        const tall = randomTensor([SMALL_PRODUCT_ROWS + 1, inF], rng) as tf.Tensor2D;
        expect(await kernelsOf(() => wasmKernels.linear!(tall, w, b))).not.toContain(
          SMALL_MATMUL_KERNEL,
        );
        expect(await kernelsOf(linear)).not.toContain(SMALL_MATMUL_KERNEL);
        heap.changed(w);
        const n0 = tf.memory().numTensors;
        const f = (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
          wasmKernels.linear!(a as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D);
        const { value, grads } = tf.valueAndGrads(f)([x, w, b], dy);
        const p = (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
          portableKernels.linear(a as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D);
        const ref = tf.valueAndGrads(p)([x, w, b], dy);
        expectClose(value, ref.value, 1e-5, "value", 1e-5);
        for (const [i, name] of ["dx", "dw", "db"].entries())
          expectClose(grads[i], ref.grads[i], 1e-5, name, 1e-5);
        tf.dispose([value, ...grads, ref.value, ...ref.grads]);
        expect(tf.memory().numTensors).toBe(n0);
        tf.dispose([w, b, x, dy, tall]);
      })();
    });
  });
});
