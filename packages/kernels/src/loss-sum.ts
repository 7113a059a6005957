import * as tf from "@tensorflow/tfjs";
import { invalidArgument } from "@sit/core";
import { webgpuLossSum } from "./webgpu/loss-sum";
import { webgpuKernelsEnabled } from "./webgpu/register";

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

/**
 * `a + λ·b` of two scalars as one taped op whose gradients are `dy` and `λ·dy` (dy cloned:
 * backprop owns dy): tfjs's add and mul would clone both of their inputs for the tape.
 */
function plusScaled(a: tf.Scalar, b: tf.Scalar, lambda: number): tf.Scalar {
  const op = tf.customGrad(((x: tf.Tensor, y: tf.Tensor) => ({
    value: tf.add(x, tf.mul(y, lambda)),
    gradFunc: (dy: tf.Tensor) => [tf.clone(dy), tf.mul(dy, lambda)],
  })) as unknown as CustomGradientFunc);
  return op(a, b) as tf.Scalar;
}

/**
 * A training step's total loss `a + λ·b` of two float32 scalar losses (SiT's `Lc + λ·Lr`), to
 * differentiate, and the vector `[a + λ·b, a, b]` to report (no gradient flows through it). On
 * webgpu one fused kernel each way (@sit/kernels' webgpu kernels on): two tfjs kernel calls per
 * step instead of six; elsewhere a custom gradient and a stack. The same bits on every path.
 */
export function lossSum(
  a: tf.Scalar,
  b: tf.Scalar,
  lambda: number,
): { total: tf.Scalar; losses: tf.Tensor1D } {
  for (const [name, t] of [
    ["a", a],
    ["b", b],
  ] as const)
    if (!(t instanceof tf.Tensor) || t.rank !== 0 || t.dtype !== "float32")
      throw invalidArgument(name, t, "a float32 scalar tensor");
  if (!Number.isFinite(lambda)) throw invalidArgument("lambda", lambda, "a finite number");
  if (tf.getBackend() === "webgpu" && webgpuKernelsEnabled()) return webgpuLossSum(a, b, lambda);
  const total = plusScaled(a, b, lambda);
  return { total, losses: tf.stack([total, a, b]) as tf.Tensor1D };
}
