import * as tf from "@tensorflow/tfjs";
import { heapColumnSum, heapOpsAvailable } from "./heap-ops";
import { withGradient } from "../custom-grad";
import type { KernelSignatures } from "../registry";

/**
 * Column sums of `x [M, n]` → `[n]`: one pass over the heap where the wasm column-sum kernel is
 * registered (heap-ops.ts), else `ones[1, M] · x` — on wasm a `Sum` over axis 0 transposes its
 * input first (a strided copy, ≈ 20× the cost of the product for a [8320, 768] input).
 */
export function columnSum(x: tf.Tensor2D): tf.Tensor1D {
  if (heapOpsAvailable() && x.dtype === "float32") return heapColumnSum(x);
  const [m, n] = x.shape;
  return tf.reshape(tf.matMul(tf.ones([1, m]), x), [n]);
}

/**
 * `dy · wᵀ` with plain products: as `(w · dyᵀ)ᵀ` when that transposes fewer elements (a small
 * batch through a large weight, e.g. SiT's 4096 × 4096 projection layer), else with `wᵀ`.
 */
export function inputGradient(dy: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const m = dy.shape[0];
  const [inF, outF] = w.shape;
  return m * (inF + outF) < inF * outF
    ? (tf.transpose(tf.matMul(w, tf.transpose(dy))) as tf.Tensor2D)
    : tf.matMul(dy, tf.transpose(w));
}

/**
 * `xᵀ · dy` with plain products, transposing the narrower of `x [M, in]` and `dy [M, out]`:
 * `(dyᵀ · x)ᵀ` when `out < in` (e.g. an MLP's second layer, whose 4·D-wide input would otherwise
 * be transposed), the final transpose being only weight-sized.
 */
export function weightGradient(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  return dy.shape[1] < x.shape[1]
    ? (tf.transpose(tf.matMul(tf.transpose(dy), x)) as tf.Tensor2D)
    : tf.matMul(tf.transpose(x), dy);
}

const withBias = withGradient<[tf.Tensor2D, tf.Tensor2D, tf.Tensor1D], tf.Tensor2D>(
  ([x, w, b], save) => {
    save([x, w]);
    return {
      value: tf.fused.matMul({ a: x, b: w, bias: b }) as tf.Tensor2D,
      backward: (dy, [xs, ws]) => [
        inputGradient(dy, ws as tf.Tensor2D),
        weightGradient(xs as tf.Tensor2D, dy),
        columnSum(dy),
      ],
    };
  },
);

const noBias = withGradient<[tf.Tensor2D, tf.Tensor2D], tf.Tensor2D>(([x, w], save) => {
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    backward: (dy, [xs, ws]) => [
      inputGradient(dy, ws as tf.Tensor2D),
      weightGradient(xs as tf.Tensor2D, dy),
    ],
  };
});

/**
 * wasm `linear`: the portable maths (plain products only), with the bias gradient as a product
 * with a row of ones instead of a `Sum` over axis 0, and the input gradient transposing the smaller
 * of (weight) or (batch rows).
 */
export const wasmLinear: KernelSignatures["linear"] = (x, weight, bias) =>
  bias ? withBias(x, weight, bias) : noBias(x, weight);
