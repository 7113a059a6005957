import * as tf from "@tensorflow/tfjs";
import { withGradient } from "../custom-grad";
import type { KernelSignatures } from "../registry";
import { heapLayerNormBackward, heapLayerNormForward, heapOpsAvailable } from "./heap-ops";
import { columnSum } from "./linear";

/** On the heap: one kernel forward ([y, x̂, rstd]) and one backward ([dx, dγ, dβ]). */
function heapLayerNormOp(eps: number) {
  return withGradient<[tf.Tensor2D, tf.Tensor1D, tf.Tensor1D], tf.Tensor2D>(([x, g, b], save) => {
    const [y, xhat, rstd] = heapLayerNormForward(x, g, b, eps);
    save([xhat, rstd, g]);
    return {
      value: y,
      backward: (dy, [xh, rs, gamma]) =>
        heapLayerNormBackward(dy, xh as tf.Tensor2D, rs as tf.Tensor1D, gamma as tf.Tensor1D),
    };
  });
}

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

const ops = new Map<string, ReturnType<typeof layerNormOp>>();

/**
 * wasm `layerNorm`: one heap kernel each way where they are registered (heap-ops.ts), else the
 * portable maths with the γ/β gradients as column sums.
 */
export const wasmLayerNorm: KernelSignatures["layerNorm"] = (x, gamma, beta, eps) => {
  const heap = heapOpsAvailable() && [x, gamma, beta].every((t) => t.dtype === "float32");
  const key = `${heap ? "heap" : "ops"} ${eps}`;
  let op = ops.get(key);
  if (!op) {
    op = heap ? heapLayerNormOp(eps) : layerNormOp(eps);
    ops.set(key, op);
  }
  return op(x, gamma, beta);
};
