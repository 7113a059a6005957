import * as tf from "@tensorflow/tfjs";

/** What the forward half of a {@link withGradient} op returns. */
export interface ForwardResult<T extends tf.Tensor> {
  value: T;
  /** Gradients of the op's inputs, in input order, given the output's gradient and the saved tensors. */
  backward: (dy: T, saved: tf.Tensor[]) => tf.Tensor[];
}

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

/**
 * A typed wrapper of `tf.customGrad`. Tensors needed by `backward` must go through `save`: the
 * forward pass of `tf.grads` runs in its own `tidy`, so closures over forward intermediates would
 * see disposed tensors by the time the backward pass runs.
 */
export function withGradient<A extends tf.Tensor[], T extends tf.Tensor>(
  forward: (inputs: A, save: (tensors: tf.Tensor[]) => void) => ForwardResult<T>,
): (...inputs: A) => T {
  const op = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const inputs = args.slice(0, -1) as A;
    const { value, backward } = forward(inputs, save);
    return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy as T, saved) };
  }) as unknown as CustomGradientFunc);
  return (...inputs: A) => op(...inputs) as T;
}
