import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber, describeValue } from "@sit/core";
import { withGradient } from "./custom-grad";
import { findOverride } from "./registry";
import { webgpuLayerNorm } from "./webgpu/layer-norm";

function layerNormOp(eps: number) {
  return withGradient<[tf.Tensor2D, tf.Tensor1D, tf.Tensor1D], tf.Tensor2D>(([x, g, b], save) => {
    const mean = tf.mean(x, -1, true);
    const centred = tf.sub(x, mean);
    // Biased variance, as PyTorch's LayerNorm.
    const variance = tf.mean(tf.square(centred), -1, true);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(centred, rstd);
    save([xhat, rstd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      // dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·γ: one fused expression instead of the
      // ~12 tape nodes of the composed moments/rsqrt graph.
      backward: (dy, [xh, rs, gamma]) => {
        const dxhat = tf.mul(dy, gamma);
        const m1 = tf.mean(dxhat, -1, true);
        const m2 = tf.mean(tf.mul(dxhat, xh), -1, true);
        const dx = tf.mul(tf.sub(tf.sub(dxhat, m1), tf.mul(xh, m2)), rs);
        return [dx, tf.sum(tf.mul(dy, xh), 0), tf.sum(dy, 0)];
      },
    };
  });
}

const ops = new Map<number, ReturnType<typeof layerNormOp>>();

/** Portable `layerNorm` on 2-D input (see {@link layerNorm}). */
export function portableLayerNorm(
  x: tf.Tensor2D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
): tf.Tensor2D {
  let op = ops.get(eps);
  if (!op) {
    op = layerNormOp(eps);
    ops.set(eps, op);
  }
  return op(x, gamma, beta);
}

/**
 * LayerNorm over the last axis of `x` (any leading shape) with PyTorch semantics: biased
 * variance, `eps` inside the square root, affine `gamma`/`beta` of shape `[D]`. The gradient is
 * written out in closed form. Dispatches to a backend override when one is registered.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-6): tf.Tensor {
  if (!(x instanceof tf.Tensor) || x.rank < 1)
    throw new ShapeError(`layerNorm x: expected a tensor of rank ≥ 1, got ${describeValue(x)}`);
  const d = x.shape[x.rank - 1];
  for (const [name, t] of [
    ["gamma", gamma],
    ["beta", beta],
  ] as const) {
    if (!(t instanceof tf.Tensor) || t.rank !== 1 || t.shape[0] !== d)
      throw new ShapeError(
        `layerNorm ${name}: expected a tensor of shape [${d}] (x's last axis), got ${describeValue(t)}`,
      );
  }
  checkNumber("layerNorm eps", eps, { min: 0, minExclusive: true });
  const impl = findOverride("layerNorm", tf.getBackend()) ?? portableLayerNorm;
  // The webgpu kernel takes any leading shape: no Reshape kernel calls around it (nor their tape
  // copies and gradients).
  if (impl === webgpuLayerNorm)
    return webgpuLayerNorm(x, gamma as tf.Tensor1D, beta as tf.Tensor1D, eps);
  return tf.tidy(() =>
    impl(x.reshape([-1, d]) as tf.Tensor2D, gamma as tf.Tensor1D, beta as tf.Tensor1D, eps).reshape(
      x.shape,
    ),
  );
}
