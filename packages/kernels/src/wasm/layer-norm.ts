import * as tf from "@tensorflow/tfjs";
import { withGradient } from "../custom-grad";
import type { KernelSignatures } from "../registry";
import { columnSum } from "./linear";

function layerNormOp(eps: number) {
  return withGradient<[tf.Tensor2D, tf.Tensor1D, tf.Tensor1D], tf.Tensor2D>(([x, g, b], save) => {
    const mean = tf.mean(x, -1, true);
    const centred = tf.sub(x, mean);
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), eps));
    const xhat = tf.mul(centred, rstd);
    save([xhat, rstd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      backward: (dy, [xh, rs, gamma]) => {
        const dxhat = tf.mul(dy, gamma);
        const m1 = tf.mean(dxhat, -1, true);
        const m2 = tf.mean(tf.mul(dxhat, xh), -1, true);
        const dx = tf.mul(tf.sub(tf.sub(dxhat, m1), tf.mul(xh, m2)), rs);
        // γ and β gradients as products with a row of ones (no axis-0 Sum, which transposes).
        return [dx, columnSum(tf.mul(dy, xh) as tf.Tensor2D), columnSum(dy)];
      },
    };
  });
}

const ops = new Map<number, ReturnType<typeof layerNormOp>>();

/** wasm `layerNorm`: the portable maths, with the γ/β gradients as XNNPACK products. */
export const wasmLayerNorm: KernelSignatures["layerNorm"] = (x, gamma, beta, eps) => {
  let op = ops.get(eps);
  if (!op) {
    op = layerNormOp(eps);
    ops.set(eps, op);
  }
  return op(x, gamma, beta);
};
