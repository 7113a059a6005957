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
  const named = module.namedParameters().filter(([, v]) => v.trainable);
  const byVar = new Map(named.map(([n, v]) => [v.name, n]));
  let extras = {} as E;
  const { value, grads } = tf.variableGrads(
    () => {
      const r = fn();
      extras = (r.extras ?? {}) as E;
      for (const t of Object.values(extras)) tf.keep(t);
      return r.loss;
    },
    named.map(([, v]) => v),
  );
  const out: Record<string, tf.Tensor> = {};
  for (const [k, g] of Object.entries(grads)) out[byVar.get(k) ?? k] = g;
  return { loss: value, grads: out, extras };
}
