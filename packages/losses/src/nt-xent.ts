import * as tf from "@tensorflow/tfjs";
import { checkNumber } from "@sit/core";
import { checkFloatTensor, checkSameShape } from "./checks";
import { l2Normalize, softmaxCrossEntropy } from "./ops";

/** Options of {@link ntXentLoss}. */
export interface NtXentOptions {
  /** τ (default 0.5, SiT v1/v2). */
  temperature?: number;
  /** ε of the L2 normalisation (default 1e-12). */
  eps?: number;
}

/**
 * SimCLR's NT-Xent over the 2B embeddings of two views `z1, z2` `[B, D]`: cosine similarities / τ,
 * each row's positive the other view of the same image, self-similarity excluded from the
 * denominator, cross-entropy averaged over the 2B rows.
 */
export function ntXentLoss(z1: tf.Tensor, z2: tf.Tensor, options: NtXentOptions = {}): tf.Scalar {
  const temperature = checkNumber("temperature", options.temperature ?? 0.5, {
    min: 0,
    minExclusive: true,
  });
  const eps = checkNumber("eps", options.eps ?? 1e-12, { min: 0, minExclusive: true });
  checkFloatTensor("z1", z1, 2, "[B, D]");
  checkFloatTensor("z2", z2, 2, "[B, D]");
  checkSameShape("z1", z1, "z2", z2);
  const n = 2 * z1.shape[0];
  // Constants built outside the tape: positives (i ↔ i ± B) and the off-diagonal selector.
  const { positives, notSelf } = tf.tidy(() => {
    const eye = tf.eye(n);
    const half = n / 2;
    const shifted = tf.concat(
      [tf.slice(eye, [half, 0], [half, n]), tf.slice(eye, [0, 0], [half, n])],
      0,
    );
    return { positives: shifted as tf.Tensor2D, notSelf: tf.sub(1, eye) as tf.Tensor2D };
  });
  try {
    return tf.tidy(() => {
      const z = l2Normalize(tf.concat([z1, z2], 0) as tf.Tensor2D, eps);
      const logits = tf.div(tf.matMul(z, tf.transpose(z)), temperature) as tf.Tensor2D;
      return softmaxCrossEntropy(logits, positives, notSelf);
    });
  } finally {
    positives.dispose();
    notSelf.dispose();
  }
}
