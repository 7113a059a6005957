import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { portableKernels } from "../portable";
import { randomTensor } from "../testing/finite-difference";
import { flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";
import { setWasmKernels, wasmKernels } from "./register";
import {
  SMALL_PRODUCT_MIN_WEIGHT,
  SMALL_PRODUCT_ROWS,
  heapProductCount,
  setSmallProduct,
} from "./small-product";

// The few-rows product over the heap (matmul-kernels.wat) against tfjs's matMul and its own
// JavaScript twin, and the wrapped wasm products' choice between it and XNNPACK (small-product.ts).

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
        const ref = b ? tf.add(tf.matMul(x, w), b) : tf.matMul(x, w);
        expectClose(tf.tensor(outs[0], [m, n]), ref, 1e-5, `[${m}, ${k}]·[${k}, ${n}]`, 1e-5);
        tf.dispose([x, w, ref, ...(b ? [b] : [])]);
      }
    });
  });

  it("takes products of a few rows by a weight changed in place; XNNPACK the rest; gradients unchanged", async () => {
    await withBackend("wasm", () => {
      setWasmKernels(true);
      setSmallProduct(true); // (otherwise installed on the first call of a wasm override)
      const heap = WasmHeap.active();
      const rng = Rng.seed(42);
      const [inF, outF] = [1024, SMALL_PRODUCT_MIN_WEIGHT / 1024];
      const w = tf.variable(randomTensor([inF, outF], rng, 0.03)) as tf.Variable<tf.Rank.R2>;
      const b = randomTensor([outF], rng) as tf.Tensor1D;
      const x = randomTensor([3, inF], rng) as tf.Tensor2D;
      const dy = randomTensor([3, outF], rng) as tf.Tensor2D;
      // The heap loop's bits (its JavaScript twin's), and whether a product took the loop.
      const loop = (withBias: boolean) => {
        const out = tf.zeros([3, outF]).add(0);
        flatKernels(heap, "js").smallMatMul({
          ...{ out: heap.offset(out), x: heap.offset(x), w: heap.offset(w) },
          ...{ bias: withBias ? heap.offset(b) : null, m: 3, k: inF, n: outF },
        });
        const v = Array.from(out.dataSync());
        out.dispose();
        return v;
      };
      const [plain, biased] = [loop(false), loop(true)];
      const viaLoop = (f: () => tf.Tensor, bits: number[]) => {
        const before = heapProductCount();
        const t = f();
        expect(Array.from(t.dataSync())).toEqual(bits);
        t.dispose();
        return heapProductCount() - before === 1;
      };
      const product = () => tf.matMul(x, w);
      // Never changed in place: XNNPACK (which then keeps it packed).
      expect(viaLoop(product, plain)).toBe(false);
      heap.changed(w); // as AdamW and the EMA do after an in-place update
      expect(viaLoop(product, plain)).toBe(true);
      expect(viaLoop(() => tf.fused.matMul({ a: x, b: w, bias: b }), biased)).toBe(true);
      // More rows than the threshold: XNNPACK, which holds the weight packed from then on.
      const tall = randomTensor([SMALL_PRODUCT_ROWS + 1, inF], rng) as tf.Tensor2D;
      tf.matMul(tall, w).dispose();
      expect(viaLoop(product, plain)).toBe(false);
      // Through wasmLinear, forward and gradients as the portable kernel's, leaking nothing.
      heap.changed(w);
      const n0 = tf.memory().numTensors;
      const f = (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        wasmKernels.linear!(a as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D);
      const before = heapProductCount();
      const { value, grads } = tf.valueAndGrads(f)([x, w, b], dy);
      expect(heapProductCount()).toBe(before + 1);
      const p = (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) =>
        portableKernels.linear(a as tf.Tensor2D, ww as tf.Tensor2D, bb as tf.Tensor1D);
      const ref = tf.valueAndGrads(p)([x, w, b], dy);
      expectClose(value, ref.value, 1e-5, "value", 1e-5);
      for (const [i, name] of ["dx", "dw", "db"].entries())
        expectClose(grads[i], ref.grads[i], 1e-5, name, 1e-5);
      tf.dispose([value, ...grads, ref.value, ...ref.grads]);
      expect(tf.memory().numTensors).toBe(n0);
      tf.dispose([w, b, x, dy, tall]);
    });
  });

  it("is removed with the other wasm kernels", async () => {
    await withBackend("wasm", () => {
      setSmallProduct(true);
      const wrapped = tf.getKernel("BatchMatMul", "wasm")?.kernelFunc;
      setWasmKernels(false);
      try {
        expect(tf.getKernel("BatchMatMul", "wasm")?.kernelFunc).not.toBe(wrapped);
      } finally {
        setWasmKernels(true);
      }
    });
  });
});
