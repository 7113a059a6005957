import * as tf from "@tensorflow/tfjs";
import { withGradient } from "../custom-grad";
import { webgpuColumnSum } from "./gelu";

// On webgpu, matMul's transpose flags cost nothing (the program reads either layout), so the
// backward uses them instead of the portable version's explicit transposes (two launches fewer),
// and the bias gradient is one fused column-sum kernel.
const withBias = withGradient<[tf.Tensor2D, tf.Tensor2D, tf.Tensor1D], tf.Tensor2D>(
  ([x, w, b], save) => {
    save([x, w]);
    return {
      value: tf.fused.matMul({ a: x, b: w, bias: b }) as tf.Tensor2D,
      backward: (dy, [xs, ws]) => [
        tf.matMul(dy, ws, false, true),
        tf.matMul(xs, dy, true, false),
        webgpuColumnSum(dy),
      ],
    };
  },
);

const noBias = withGradient<[tf.Tensor2D, tf.Tensor2D], tf.Tensor2D>(([x, w], save) => {
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    backward: (dy, [xs, ws]) => [tf.matMul(dy, ws, false, true), tf.matMul(xs, dy, true, false)],
  };
});

/** The `linear` override for webgpu (same maths as the portable one, fewer launches). */
export function webgpuLinear(
  x: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | null,
): tf.Tensor2D {
  return bias ? withBias(x, weight, bias) : noBias(x, weight);
}
