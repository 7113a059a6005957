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

/** Rows from which a weight gradient counts as long (rows ≥ this × the wider operand's width). */
const LONG_PRODUCT_RATIO = 8;
/** Narrower width from which the long-product order pays (XNNPACK is slow with 48 columns). */
const WIDE_ENOUGH = 128;

/**
 * `xᵀ · dy` with plain products. On wasm one operand must be transposed first (a product with
 * `transposeA` runs tfjs's scalar loop), and XNNPACK packs the right-hand one anew (a fresh
 * gradient is never cached). Usually the narrower of `x [M, in]` and `dy [M, out]` is transposed:
 * `(dyᵀ · x)ᵀ` when `out < in` (an MLP's second layer, whose 4·D-wide input would otherwise be
 * transposed), the final transpose being only weight-sized. For long products (M rows ≥
 * {@link LONG_PRODUCT_RATIO} × the wider width, both widths ≥ {@link WIDE_ENOUGH}: a ViT block's
 * layers at batch 64, 8,320 rows) the narrower operand is the packed right-hand side and the
 * wider one is transposed. Measured (CPU ms of both threads, ViT-Tiny shapes, loaded machine):
 * MLP second layer 140 → 109, first 111 → 104, q/k/v 91 → 77; the other order stays for short or
 * narrow products (a 48-wide one 14 vs 39, 128 rows through 4096 × 4096 126 vs 293).
 */
export function weightGradient(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  const [m, inF] = x.shape;
  const outF = dy.shape[1];
  const long = m >= LONG_PRODUCT_RATIO * Math.max(inF, outF) && Math.min(inF, outF) >= WIDE_ENOUGH;
  const transposeDy = long ? inF < outF : outF < inF;
  return transposeDy
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
