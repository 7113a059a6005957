import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { withGradient } from "./custom-grad";
import { findOverride } from "./registry";

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

const geluOp = withGradient<[tf.Tensor], tf.Tensor>(([x], save) => {
  save([x]);
  return {
    // 0.5·x·(1 + erf(x/√2)): PyTorch's nn.GELU() default (not the tanh approximation).
    value: tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)),
    // d/dx = Φ(x) + x·φ(x).
    backward: (dy, [xs]) => {
      const cdf = tf.mul(tf.add(tf.erf(tf.mul(xs, Math.SQRT1_2)), 1), 0.5);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(xs), -0.5)), INV_SQRT_2PI);
      return [tf.mul(dy, tf.add(cdf, tf.mul(xs, pdf)))];
    },
  };
});

/** Portable `gelu` (see {@link gelu}). */
export function portableGelu(x: tf.Tensor): tf.Tensor {
  return geluOp(x);
}

/**
 * Exact GELU, `0.5·x·(1 + erf(x/√2))`, elementwise on a float32 tensor, with a closed-form
 * gradient. Dispatches to a backend override when one is registered.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (!(x instanceof tf.Tensor) || x.dtype !== "float32")
    throw new ShapeError(`gelu x: expected a float32 tensor, got ${describeValue(x)}`);
  const impl = findOverride("gelu", tf.getBackend()) ?? portableGelu;
  return impl(x);
}
