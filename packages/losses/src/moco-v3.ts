import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber } from "@sit/core";
import { checkFloatTensor, checkSameShape } from "./checks";
import { l2Normalize, softmaxCrossEntropy, stopGradient } from "./ops";

/** {@link mocoV3Loss}'s defaults: SiT's `simclr_temp` τ 0.2 and PyTorch's normalisation ε. */
export const CONTRASTIVE_LOSS_DEFAULTS = { temperature: 0.2, eps: 1e-12 } as const;

/** Options of {@link mocoV3Loss} and {@link sitContrastiveLoss} ({@link CONTRASTIVE_LOSS_DEFAULTS}). */
export interface MocoV3Options {
  /** τ (SiT's `simclr_temp`, default 0.2). */
  temperature?: number;
  /** ε of the L2 normalisation (default 1e-12, PyTorch's). */
  eps?: number;
}

function checkPair(qName: string, q: tf.Tensor, kName: string, k: tf.Tensor): void {
  checkFloatTensor(qName, q, 2, "[B, D]");
  checkFloatTensor(kName, k, 2, "[B, D]");
  checkSameShape(qName, q, kName, k);
}

/**
 * MoCo-v3 contrastive loss of student queries `q` `[B, D]` against teacher keys `k` `[B, D]`
 * (SiT v3, §5): `2τ · CE(normalize(q) · normalize(k)ᵀ / τ, target = own index)`, mean over the
 * B rows. The positive of row i is key i (the teacher's embedding of the other view of the same
 * image); the other keys are negatives. `k` is detached: no gradient reaches the teacher.
 */
export function mocoV3Loss(q: tf.Tensor, k: tf.Tensor, options: MocoV3Options = {}): tf.Scalar {
  const temperature = checkNumber(
    "temperature",
    options.temperature ?? CONTRASTIVE_LOSS_DEFAULTS.temperature,
    {
      min: 0,
      minExclusive: true,
    },
  );
  const eps = checkNumber("eps", options.eps ?? CONTRASTIVE_LOSS_DEFAULTS.eps, {
    min: 0,
    minExclusive: true,
  });
  checkPair("q", q, "k", k);
  const batch = q.shape[0];
  // The one-hot target is a constant: no gather or comparison is recorded on the tape.
  const target = tf.eye(batch) as tf.Tensor2D;
  try {
    return tf.tidy(() => {
      const qn = l2Normalize(q as tf.Tensor2D, eps);
      const kn = l2Normalize(stopGradient(k) as tf.Tensor2D, eps);
      // Explicit transpose + plain matMul: transposed products are slow on wasm.
      const logits = tf.div(tf.matMul(qn, tf.transpose(kn)), temperature) as tf.Tensor2D;
      return tf.mul(softmaxCrossEntropy(logits, target), 2 * temperature) as tf.Scalar;
    });
  } finally {
    target.dispose();
  }
}

/**
 * SiT v3's contrastive term: `mocoV3Loss(s1, t2) + mocoV3Loss(s2, t1)` (a sum, not a mean), with
 * `s1, s2` the student projections of the corrupted views and `t1, t2` the teacher projections of
 * the clean views, all `[B, D]`.
 */
export function sitContrastiveLoss(
  s1: tf.Tensor,
  s2: tf.Tensor,
  t1: tf.Tensor,
  t2: tf.Tensor,
  options: MocoV3Options = {},
): tf.Scalar {
  checkPair("s1", s1, "t2", t2);
  checkPair("s2", s2, "t1", t1);
  if (!tf.util.arraysEqual(s1.shape, s2.shape))
    throw new ShapeError(
      `s2: expected the shape of s1 [${s1.shape.join(", ")}], got [${s2.shape.join(", ")}]`,
    );
  return tf.tidy(
    () => tf.add(mocoV3Loss(s1, t2, options), mocoV3Loss(s2, t1, options)) as tf.Scalar,
  );
}
