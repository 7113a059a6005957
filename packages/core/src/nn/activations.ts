import * as tf from "@tensorflow/tfjs";

const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

// One custom op so the tape holds a single node whose backward pass is the closed form
// Φ(x) + x·φ(x), instead of differentiating through erf, mul and add separately.
const geluOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  const save = args[1] as tf.GradSaveFunc;
  save([x]);
  const value = tf.tidy(() => x.mul(tf.erf(x.mul(INV_SQRT2)).add(1)).mul(0.5));
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs] = saved;
      return tf.tidy(() => {
        const cdf = tf.erf(xs.mul(INV_SQRT2)).add(1).mul(0.5);
        const pdf = tf.exp(tf.square(xs).mul(-0.5)).mul(INV_SQRT_2PI);
        return dy.mul(cdf.add(xs.mul(pdf)));
      });
    },
  };
});

/**
 * Exact GELU, `x·Φ(x) = 0.5·x·(1 + erf(x/√2))`, as PyTorch's `nn.GELU()` (not the tanh
 * approximation). Differentiable on every backend: the gradient `Φ(x) + x·φ(x)` is supplied in
 * closed form, so it does not depend on a backend's `Erf` gradient.
 */
export function gelu<T extends tf.Tensor>(x: T): T {
  return geluOp(x) as T;
}

/** Activation names accepted by {@link MLP} blocks. */
export type ActivationName = "relu" | "gelu";

/** Apply an activation by name (`null` is the identity). */
export function activation(name: ActivationName | null | undefined, x: tf.Tensor): tf.Tensor {
  if (name === "relu") return tf.relu(x);
  if (name === "gelu") return gelu(x);
  return x;
}
