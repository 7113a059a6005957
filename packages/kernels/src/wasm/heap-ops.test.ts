import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { flatKernels } from "./flat-kernels";
import { wasmGelu } from "./gelu";
import {
  heapColumnSum,
  heapGeluAvailable,
  heapGeluBackward,
  heapGeluForward,
  heapOpsAvailable,
} from "./heap-ops";
import { WasmHeap } from "./heap";
import { columnSum } from "./linear";
import { setWasmKernels } from "./register";

// The wasm heap kernels (heap-ops.ts over layer-kernels.wat): column sums, LayerNorm and GELU,
// against tfjs's ops or float64 references, and the SIMD module against its JavaScript twin.

describe("wasm heap column sums", () => {
  it("equal a Sum over rows, SIMD and JavaScript alike, with a gradient, leaking nothing", async () => {
    await withBackend("wasm", () => {
      const heap = WasmHeap.active();
      const rng = Rng.seed(21);
      // Column counts with and without a remainder after the four-wide vectors.
      for (const [rows, cols] of [
        [37, 12],
        [5, 7],
        [300, 97],
      ]) {
        const x = tf.tensor2d(rng.fillNormal(new Float32Array(rows * cols), 0, 1), [rows, cols]);
        const n0 = tf.memory().numTensors;
        const y = columnSum(x);
        expect(heapOpsAvailable()).toBe(true);
        expect(tf.memory().numTensors).toBe(n0 + 1);
        const ref = tf.sum(x, 0);
        expectClose(y, ref, 1e-5, `[${rows}, ${cols}]`, 1e-5);
        const outs = ["simd", "js"].map((kind) => {
          const out = tf.zeros([cols]).add(0);
          flatKernels(heap, kind as "simd" | "js").columnSum(
            heap.offset(out),
            heap.offset(x),
            rows,
            cols,
          );
          const v = Array.from(out.dataSync());
          out.dispose();
          return v;
        });
        expect(outs[0]).toEqual(outs[1]);
        expect(outs[0]).toEqual(Array.from(y.dataSync()));
        const dy = tf.tensor1d(rng.fillNormal(new Float32Array(cols), 0, 1));
        const [dx] = tf.grads((a: tf.Tensor) => heapColumnSum(a as tf.Tensor2D))([x], dy);
        expectClose(dx, tf.mul(tf.onesLike(x), dy), 0, "dx");
        tf.dispose([x, y, ref, dy, dx]);
      }
      setWasmKernels(false);
      try {
        expect(heapOpsAvailable()).toBe(false);
      } finally {
        setWasmKernels(true);
      }
    });
  });
});

describe("wasm heap LayerNorm", () => {
  it("SIMD and JavaScript give identical forward and backward results, close to the portable op", async () => {
    await withBackend("wasm", () => {
      const heap = WasmHeap.active();
      const rng = Rng.seed(33);
      for (const [rows, cols] of [
        [9, 16],
        [4, 19],
      ]) {
        const t = (n: number, std = 1) => tf.tensor1d(rng.fillNormal(new Float32Array(n), 0, std));
        const [x, g, b, dy] = [t(rows * cols, 2), t(cols), t(cols), t(rows * cols)];
        const run = (kind: "simd" | "js") => {
          const k = flatKernels(heap, kind);
          const [y, xh, rs, dx, dg, db] = [
            rows * cols,
            rows * cols,
            rows,
            rows * cols,
            cols,
            cols,
          ].map((n) => tf.zeros([n]).add(0));
          const at = (v: tf.Tensor) => heap.offset(v);
          k.layerNormForward({
            ...{ y: at(y), xhat: at(xh), rstd: at(rs), x: at(x), gamma: at(g), beta: at(b) },
            ...{ rows, cols, eps: 1e-6 },
          });
          k.layerNormBackward({
            ...{ dx: at(dx), dgamma: at(dg), dbeta: at(db), dy: at(dy), xhat: at(xh) },
            ...{ rstd: at(rs), gamma: at(g), rows, cols },
          });
          const out = [y, xh, rs, dx, dg, db].map((v) => Array.from(v.dataSync()));
          tf.dispose([y, xh, rs, dx, dg, db]);
          return out;
        };
        const simd = run("simd");
        expect(simd).toEqual(run("js"));
        // Against the portable formulas (tfjs ops): forward 1e-5, gradients 1e-4.
        const x2 = x.reshape([rows, cols]) as tf.Tensor2D;
        const f = (xs: tf.Tensor, gs: tf.Tensor, bs: tf.Tensor) => {
          const mean = tf.mean(xs, -1, true);
          const c = tf.sub(xs, mean);
          const r = tf.rsqrt(tf.add(tf.mean(tf.square(c), -1, true), 1e-6));
          return tf.add(tf.mul(tf.mul(c, r), gs), bs);
        };
        expectClose(
          new Float32Array(simd[0]),
          f(x2, g, b).dataSync() as Float32Array,
          1e-5,
          "y",
          1e-6,
        );
        const grads = tf.grads(f)([x2, g, b], dy.reshape([rows, cols]));
        for (const [i, name] of [
          [3, "dx"],
          [4, "dγ"],
          [5, "dβ"],
        ] as const)
          expectClose(
            new Float32Array(simd[i]),
            grads[i - 3].dataSync() as Float32Array,
            1e-4,
            name,
            1e-5,
          );
        tf.dispose([x, g, b, dy, x2, ...grads]);
      }
    });
  });
});

describe("wasm heap GELU", () => {
  // Φ in float64 from the same erfc fit (fractional error < 1.2e-7), as the reference.
  const phi = (x: number) => {
    const z = Math.abs(x) / Math.SQRT2;
    const t = 1 / (1 + 0.5 * z);
    const c = [-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807];
    const d = [-1.13520398, 1.48851587, -0.82215223, 0.17087277];
    const poly = [...c, ...d].reduceRight((acc, k) => k + t * acc, 0);
    const r = 0.5 * t * Math.exp(-z * z + poly);
    return x >= 0 ? 1 - r : r;
  };

  it("matches exact GELU and its gradient in float64 over the whole range, tails included", async () => {
    await withBackend("wasm", () => {
      expect(heapGeluAvailable()).toBe(true);
      // 4·k + 3 values from −12 to 12, plus the extremes: vector loop and scalar tail both run.
      const xs = [...Array.from({ length: 483 }, (_, i) => -12 + (24 * i) / 482), -90, 90, 0];
      const x = tf.tensor1d(xs);
      const dy = tf.tensor1d(xs.map((_, i) => Math.cos(i)));
      const n0 = tf.memory().numTensors;
      const [y, cdf] = heapGeluForward(x);
      const dx = heapGeluBackward(dy, x, cdf);
      expect(tf.memory().numTensors).toBe(n0 + 3);
      const want = xs.map((v) => v * phi(v));
      const wantDx = xs.map(
        (v, i) => Math.cos(i) * (phi(v) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI)),
      );
      expectClose(y.dataSync() as Float32Array, Float32Array.from(want), 2e-6, "y", 1e-30);
      expectClose(dx.dataSync() as Float32Array, Float32Array.from(wantDx), 2e-6, "dx", 1e-30);
      // The public wasm gelu routes here, with this gradient.
      const g = tf.grads((a: tf.Tensor) => wasmGelu(a))([x], dy)[0];
      expect(Array.from(g.dataSync())).toEqual(Array.from(dx.dataSync()));
      tf.dispose([x, dy, y, cdf, dx, g]);
      // A NaN stays NaN.
      const nan = tf.tensor1d([Number.NaN, 1]);
      const [yn, cn] = heapGeluForward(nan);
      expect(Number.isNaN(yn.dataSync()[0])).toBe(true);
      tf.dispose([nan, yn, cn]);
    });
  });
});
