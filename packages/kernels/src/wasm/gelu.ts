import * as tf from "@tensorflow/tfjs";
import { withGradient } from "../custom-grad";
import type { KernelSignatures } from "../registry";
import { heapGeluAvailable, heapGeluBackward, heapGeluForward } from "./heap-ops";

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * wasm `gelu`: exact GELU `x·Φ(x)` that keeps `Φ(x)` for the backward pass, so the gradient
 * `Φ(x) + x·φ(x)` needs no second `erf` (on wasm a scalar libm call, ≈ 40× a multiply), and takes
 * `φ`'s `exp(−x²/2)` as `elu(−x²/2) + 1` (XNNPACK's vectorised expm1; `Exp` is scalar, ≈ 7× slower).
 */
const geluOp = withGradient<[tf.Tensor], tf.Tensor>(([x], save) => {
  const cdf = tf.mul(tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1), 0.5);
  save([x, cdf]);
  return {
    value: tf.mul(x, cdf),
    backward: (dy, [xs, phi]) => {
      const gauss = tf.add(tf.elu(tf.mul(tf.square(xs), -0.5)), 1); // exp(−x²/2), argument ≤ 0
      return [tf.mul(dy, tf.add(phi, tf.mul(tf.mul(xs, gauss), INV_SQRT_2PI)))];
    },
  };
});

/** On the heap: one SIMD kernel each way (Φ from an erfc fit, no libm call per element). */
const heapGeluOp = withGradient<[tf.Tensor], tf.Tensor>(([x], save) => {
  const [y, cdf] = heapGeluForward(x);
  save([x, cdf]);
  return { value: y, backward: (dy, [xs, phi]) => [heapGeluBackward(dy, xs, phi)] };
});

/** wasm `gelu`: the heap kernels where they run (heap-ops.ts), else the op above. */
export const wasmGelu: KernelSignatures["gelu"] = (x) =>
  heapGeluAvailable() && x.dtype === "float32" ? heapGeluOp(x) : geluOp(x);
