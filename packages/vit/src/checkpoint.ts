import * as tf from "@tensorflow/tfjs";

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

/**
 * Gradient checkpointing of one function: `fn(x)` runs without keeping its intermediates for the
 * backward pass (only `x` is kept), and the backward pass recomputes it under a nested `tf.grads`
 * to get the gradients of `x` and of `params` (every trainable tensor `fn` reads besides `x`).
 * This trades one extra forward per checkpoint for memory: on wasm (a 32-bit heap that never
 * shrinks) a depth-12 ViT at batch 64 does not fit without it. `fn` must be deterministic (draw
 * random numbers outside it) and must not dispose `x`.
 *
 * Outside a gradient tape (plain inference) this is just `fn(x)`.
 */
export function gradientCheckpoint(
  fn: (x: tf.Tensor) => tf.Tensor,
  x: tf.Tensor,
  params: tf.Tensor[],
): tf.Tensor {
  const engine = tf.engine();
  if (engine.state.gradientDepth === 0) return fn(x);
  const op = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save([args[0] as tf.Tensor]);
    return {
      value: fn(args[0] as tf.Tensor),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        // A nested tf.grads during backprop replaces the engine's active tape and sets it to null
        // when done; the outer backward pass still needs it afterwards (to free its saved tensors).
        const outerTape = engine.state.activeTape;
        try {
          return tf.grads((xi: tf.Tensor) => fn(xi))([saved[0], ...params], dy);
        } finally {
          engine.state.activeTape = outerTape;
        }
      },
    };
  }) as unknown as CustomGradientFunc);
  return op(x, ...params);
}
