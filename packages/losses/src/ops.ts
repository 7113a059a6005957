import * as tf from "@tensorflow/tfjs";

/**
 * Identity in the forward pass, zero gradient in the backward pass (PyTorch's `detach`). tfjs has
 * no stop-gradient op; a custom gradient gives one that works on every backend.
 */
export const stopGradient: (x: tf.Tensor) => tf.Tensor = tf.customGrad((x, save) => {
  void save;
  return { value: (x as tf.Tensor).clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * Row-wise L2 normalisation as PyTorch's `F.normalize(x, dim=-1, eps)`: `x / max(‖x‖, eps)`.
 * Written as `x · rsqrt(max(Σx², eps²))` so a zero row stays finite in both passes.
 */
export function l2Normalize(x: tf.Tensor2D, eps = 1e-12): tf.Tensor2D {
  return tf.tidy(() => {
    const sumSquares = tf.sum(tf.square(x), -1, true);
    return tf.mul(x, tf.rsqrt(tf.maximum(sumSquares, eps * eps))) as tf.Tensor2D;
  });
}

/**
 * Cross-entropy of each row of `logits` against the one-hot `target` rows (built outside the tape:
 * no gather or comparison is recorded), mean over rows: `mean(logsumexp(l) − Σ target·l)`. The
 * log-sum-exp subtracts the row maximum, treated as a constant (its gradient cancels exactly).
 * `keep` (0/1, same shape) excludes entries from the sum of exponentials (e.g. self-similarity).
 */
export function softmaxCrossEntropy(
  logits: tf.Tensor2D,
  target: tf.Tensor2D,
  keep?: tf.Tensor2D,
): tf.Scalar {
  return tf.tidy(() => {
    const rowMax = stopGradient(tf.max(logits, 1, true));
    const shifted = tf.sub(logits, rowMax);
    let expd = tf.exp(shifted);
    if (keep) expd = tf.mul(expd, keep);
    const logSumExp = tf.log(tf.sum(expd, 1));
    const positive = tf.sum(tf.mul(shifted, target), 1);
    return tf.mean(tf.sub(logSumExp, positive)) as tf.Scalar;
  });
}
