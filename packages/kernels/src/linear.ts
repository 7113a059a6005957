import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { withGradient } from "./custom-grad";
import { findOverride } from "./registry";
import { webgpuFusedLinear } from "./webgpu/gemm-linear";
import { webgpuLinear } from "./webgpu/linear";

// Gradients as plain products with explicit transposes: on wasm a matMul with transposeA or
// transposeB (what tfjs's own MatMul gradient uses) runs ~13× slower than a plain one.
const linearWithBias = withGradient<[tf.Tensor2D, tf.Tensor2D, tf.Tensor1D], tf.Tensor2D>(
  ([x, w, b], save) => {
    save([x, w]);
    return {
      value: tf.fused.matMul({ a: x, b: w, bias: b }) as tf.Tensor2D,
      backward: (dy, [xs, ws]) => [
        tf.matMul(dy, tf.transpose(ws)),
        tf.matMul(tf.transpose(xs), dy),
        tf.sum(dy, 0),
      ],
    };
  },
);

const linearNoBias = withGradient<[tf.Tensor2D, tf.Tensor2D], tf.Tensor2D>(([x, w], save) => {
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    backward: (dy, [xs, ws]) => [tf.matMul(dy, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy)],
  };
});

/** Portable `linear` on 2-D input (see {@link linear}). */
export function portableLinear(
  x: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | null,
): tf.Tensor2D {
  return bias ? linearWithBias(x, weight, bias) : linearNoBias(x, weight);
}

/**
 * Fully connected layer `y = x·W + b` over the last axis of `x` (any leading shape), with the
 * weight in tfjs's `[in, out]` layout. Its gradient uses only plain (non-transposed) products.
 * Dispatches to a backend override when one is registered (see `registerKernelOverride`).
 */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor | null): tf.Tensor {
  if (!(weight instanceof tf.Tensor) || weight.rank !== 2)
    throw new ShapeError(
      `linear weight: expected a rank-2 tensor [in, out], got ${describeValue(weight)}`,
    );
  const [inF, outF] = weight.shape;
  if (!(x instanceof tf.Tensor) || x.rank < 1 || x.shape[x.rank - 1] !== inF)
    throw new ShapeError(
      `linear x: expected a tensor whose last axis is ${inF} (weight is [${inF}, ${outF}]), got ${describeValue(x)}`,
    );
  if (bias != null && (!(bias instanceof tf.Tensor) || bias.rank !== 1 || bias.shape[0] !== outF))
    throw new ShapeError(
      `linear bias: expected a tensor of shape [${outF}], got ${describeValue(bias)}`,
    );
  const impl = findOverride("linear", tf.getBackend()) ?? portableLinear;
  // The webgpu GEMM takes any leading shape: no Reshape kernel calls around it (nor their tape
  // copies and gradients).
  if (impl === webgpuLinear) return webgpuFusedLinear(x, weight, bias ?? null);
  const lead = x.shape.slice(0, -1);
  return tf.tidy(() => {
    const y = impl(
      x.reshape([-1, inF]) as tf.Tensor2D,
      weight as tf.Tensor2D,
      (bias ?? null) as tf.Tensor1D | null,
    );
    return y.reshape([...lead, outF]);
  });
}
