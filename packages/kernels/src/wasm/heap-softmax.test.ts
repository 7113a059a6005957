import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { randomTensor } from "../testing/finite-difference";
import { flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";
import { heapSimdAvailable, heapSoftmax, heapSoftmaxBackward } from "./heap-ops";
import { setWasmKernels } from "./register";
import { expTwin } from "./softmax-twin";

// The attention softmax over the heap (activation-kernels.wat) against tfjs's Softmax and its
// gradient, and the SIMD module against its JavaScript twin (softmax-twin.ts).

describe("wasm heap attention softmax", () => {
  it("its exp agrees with Math.exp to float32 precision, and is 0 below −87.3", () => {
    let worst = 0;
    for (let x = -87; x <= 0; x += 0.0137) {
      const xf = Math.fround(x);
      worst = Math.max(worst, Math.abs(expTwin(xf) / Math.exp(xf) - 1));
    }
    expect(worst).toBeLessThan(3e-7);
    expect(expTwin(-90)).toBe(0);
    expect(expTwin(0)).toBe(1);
  });

  // Row lengths with every remainder after the four-wide vectors (65: ViT-Tiny/4's tokens).
  const cases: [number[], number][] = [
    [[7, 3, 65], 0.125],
    [[5, 4], 1],
    [[6, 7], 0.5],
    [[3, 2], 2],
    [[4, 1], 1],
  ];

  it.each(cases)(
    "%j (scale %d): SIMD and JavaScript agree bit for bit, close to tfjs",
    async (shape, scale) => {
      await withBackend("wasm", () => {
        setWasmKernels(true); // registers the heap kernels (idempotent)
        const heap = WasmHeap.active();
        const rng = Rng.seed(51 + shape.length);
        const n = shape[shape.length - 1];
        const rows = shape.reduce((a, b) => a * b, 1) / n;
        // Wide scores so that some exponents fall below float32's range (exp → 0).
        const x = randomTensor(shape, rng, 40);
        const dp = randomTensor(shape, rng);
        const run = (kind: "simd" | "js") => {
          const k = flatKernels(heap, kind);
          const [p, dx] = [tf.zeros(shape).add(0), tf.zeros(shape).add(0)];
          k.softmax.forward(heap.offset(p), heap.offset(x), rows, n, scale);
          k.softmax.backward(heap.offset(dx), heap.offset(dp), heap.offset(p), rows, n, scale);
          const out = [Array.from(p.dataSync()), Array.from(dx.dataSync())];
          tf.dispose([p, dx]);
          return out;
        };
        const [simd, js] = [run("simd"), run("js")];
        expect(flatKernels(heap).kind).toBe("simd");
        expect(simd[0]).toEqual(js[0]);
        expect(simd[1]).toEqual(js[1]);

        expect(heapSimdAvailable()).toBe(true);
        const n0 = tf.memory().numTensors;
        const p = heapSoftmax(x, scale);
        const dx = heapSoftmaxBackward(dp, p, scale);
        expect(tf.memory().numTensors).toBe(n0 + 2);
        expect(Array.from(p.dataSync())).toEqual(simd[0]);
        // tfjs's Softmax of the scaled scores, and its gradient by tfjs's autodiff.
        const f = (a: tf.Tensor) => tf.softmax(tf.mul(a, scale));
        const ref = f(x);
        const [refDx] = tf.grads(f)([x], dp);
        expectClose(p, ref, 1e-6, "p", 1e-6);
        expectClose(dx, refDx, 1e-5, "dx", 1e-5);
        tf.dispose([x, dp, p, dx, ref, refDx]);
      });
    },
  );

  it("rejects a gradient of another shape, naming both", async () => {
    await withBackend("wasm", () => {
      const [dp, p] = [tf.zeros([2, 3]), tf.zeros([2, 4])];
      expect(() => heapSoftmaxBackward(dp, p, 1)).toThrow(/shape \[2,4\], got \[2,3\]/);
      tf.dispose([dp, p]);
    });
  });
});
