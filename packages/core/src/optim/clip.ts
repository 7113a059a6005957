import * as tf from "@tensorflow/tfjs";
import { checkNumber, invalidArgument } from "../errors";
import type { Gradients } from "./adamw";

function checkGrads(grads: Gradients): [string, tf.Tensor][] {
  if (grads === null || typeof grads !== "object")
    throw invalidArgument("grads", grads, "an object mapping names to gradient tensors");
  const entries = Object.entries(grads);
  for (const [k, t] of entries)
    if (!(t instanceof tf.Tensor))
      throw invalidArgument(`grads[${JSON.stringify(k)}]`, t, "a tensor");
  return entries;
}

/**
 * SiT's per-tensor clipping (`clip_gradients`): every gradient whose L2 norm exceeds `maxNorm` is
 * scaled by `maxNorm / (norm + 1e-6)`. Returns new tensors (the caller disposes them and the inputs).
 * {@link AdamW} does the same internally on its flat buffers (option `clipPerTensor`).
 */
export function clipGradientsPerTensor(grads: Gradients, maxNorm: number): Gradients {
  checkNumber("maxNorm", maxNorm, { min: 0, minExclusive: true });
  const entries = checkGrads(grads);
  return tf.tidy(() => {
    const out: Gradients = {};
    for (const [k, g] of entries) {
      const coef = tf.div(maxNorm, tf.norm(g).add(1e-6));
      out[k] = g.mul(tf.minimum(coef, 1));
    }
    return out;
  });
}

/**
 * Global-norm clipping (PyTorch's `clip_grad_norm_`): all gradients are scaled by
 * `min(1, maxNorm / (‖all‖ + 1e-6))`, where ‖all‖ is the norm of the concatenated gradients.
 * Returns new tensors and the total norm before clipping (a scalar tensor; the caller disposes).
 */
export function clipGradientsGlobalNorm(
  grads: Gradients,
  maxNorm: number,
): { grads: Gradients; totalNorm: tf.Scalar } {
  checkNumber("maxNorm", maxNorm, { min: 0, minExclusive: true });
  const entries = checkGrads(grads);
  return tf.tidy(() => {
    const squares = entries.map(([, g]) => tf.sum(tf.square(g)));
    const totalNorm = tf.sqrt(squares.length ? tf.addN(squares) : tf.scalar(0)) as tf.Scalar;
    const coef = tf.minimum(tf.div(maxNorm, totalNorm.add(1e-6)), 1);
    const out: Gradients = {};
    for (const [k, g] of entries) out[k] = g.mul(coef);
    return { grads: out, totalNorm };
  });
}
