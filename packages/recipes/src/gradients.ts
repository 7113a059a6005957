import * as tf from "@tensorflow/tfjs";
import type { Module } from "@sit/core";

/**
 * Gradients of `loss` with respect to the module's trainable parameters, keyed by dotted name,
 * plus the loss value and any extra tensors the function returns. The extras are kept past the
 * gradient scope with `tf.keep`: the caller must dispose them (an enclosing tidy does not).
 */
export function gradientsByName<E extends Record<string, tf.Tensor>>(
  module: Module,
  fn: () => { loss: tf.Scalar; extras?: E },
): { loss: tf.Scalar; grads: Record<string, tf.Tensor>; extras: E } {
  // Index loops, no maps or entry arrays: this runs every step over every parameter.
  const names: string[] = [];
  const vars: tf.Variable[] = [];
  for (const entry of module.namedParameters())
    if (entry[1].trainable) {
      names.push(entry[0]);
      vars.push(entry[1]);
    }
  let extras = {} as E;
  const { value, grads } = tf.variableGrads(() => {
    const r = fn();
    extras = (r.extras ?? {}) as E;
    for (const t of Object.values(extras)) tf.keep(t);
    return r.loss;
  }, vars);
  // variableGrads keys the gradients by variable name; the caller wants parameter names.
  const out: Record<string, tf.Tensor> = {};
  for (let i = 0; i < vars.length; i++) {
    const g = grads[vars[i].name];
    if (g) out[names[i]] = g;
  }
  return { loss: value, grads: out, extras };
}
