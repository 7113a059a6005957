import type * as tf from "@tensorflow/tfjs";
import { AdamW } from "@sit/core";
import { SgdMomentum } from "./sgd";

/** The update used by {@link linearProbe}: gradients matched to the parameters by position. */
export interface HeadOptimizer {
  step(grads: tf.Tensor[], lr: number): void;
  dispose(): void;
}

/**
 * SGD-momentum (ours, PyTorch semantics) or AdamW (@sit/core's). Either way weight decay applies
 * to matrices only (biases and other 1-D tensors get none).
 */
export function makeHeadOptimizer(
  name: "sgd" | "adamw",
  params: [string, tf.Variable][],
  opts: { momentum: number; weightDecay: number },
): HeadOptimizer {
  if (name === "sgd") {
    const sgd = new SgdMomentum(
      params.map(([, p]) => p),
      opts.momentum,
    );
    return {
      step: (grads, lr) => sgd.step(grads, lr, opts.weightDecay),
      dispose: () => sgd.dispose(),
    };
  }
  const adamw = new AdamW(params, { lr: 0, weightDecay: opts.weightDecay });
  return {
    step: (grads, lr) => {
      adamw.setLr(lr);
      adamw.step(Object.fromEntries(params.map(([n], i) => [n, grads[i]])));
    },
    dispose: () => adamw.dispose(),
  };
}
