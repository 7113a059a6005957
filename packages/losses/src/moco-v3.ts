import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber, contrastiveLossKernel } from "@sit/core";
import { checkFloatTensor, checkSameShape } from "./checks";
import { l2Normalize } from "./ops";

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
 * image); the other keys are negatives. `k` is detached: no gradient reaches the teacher. A fused
 * kernel registered for the active backend (@sit/core's `registerContrastiveLossKernel`; webgpu
 * with @sit/kernels) takes the call; otherwise the portable custom gradient below.
 */
export function mocoV3Loss(q: tf.Tensor, k: tf.Tensor, options: MocoV3Options = {}): tf.Scalar {
  const { temperature, eps } = resolveOptions(options);
  checkPair("q", q, "k", k);
  const fused = contrastiveLossKernel(tf.getBackend());
  if (fused) return fused([[q as tf.Tensor2D, k as tf.Tensor2D]], temperature, eps);
  return tf.tidy(() => fusedMocoV3(q as tf.Tensor2D, k as tf.Tensor2D, temperature, eps));
}

function resolveOptions(options: MocoV3Options): { temperature: number; eps: number } {
  const temperature = checkNumber(
    "temperature",
    options.temperature ?? CONTRASTIVE_LOSS_DEFAULTS.temperature,
    { min: 0, minExclusive: true },
  );
  const eps = checkNumber("eps", options.eps ?? CONTRASTIVE_LOSS_DEFAULTS.eps, {
    min: 0,
    minExclusive: true,
  });
  return { temperature, eps };
}

/**
 * {@link mocoV3Loss} as one custom gradient: tfjs's autodiff of the composed ops (normalisation,
 * product, log-sum-exp, cross-entropy) recorded ≈ 110 kernels per call, forward and backward; the
 * hand-written backward needs ≈ 15. With `L = q̂·k̂ᵀ/τ`, `P = softmax(L)` per row and
 * `q̂ = q·r`, `r = 1/√max(Σq², ε²)`: `∂/∂q̂ = (2/B)·(P − I)·k̂`, and through the normalisation
 * `∂/∂q = r·∂q̂ − r³·q·Σ(∂q̂ ⊙ q)` (the second term only where Σq² > ε²). `k` gets no gradient.
 */
function fusedMocoV3(q: tf.Tensor2D, k: tf.Tensor2D, temperature: number, eps: number): tf.Scalar {
  const epsSq = eps * eps;
  const op = tf.customGrad(((qIn: tf.Tensor2D, kIn: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const sumSq = tf.sum(tf.square(qIn), 1, true);
    const r = tf.rsqrt(tf.maximum(sumSq, epsSq));
    const qn = tf.mul(qIn, r) as tf.Tensor2D;
    const kn = l2Normalize(kIn, eps);
    // Explicit transpose + plain matMul: transposed products are slow on wasm.
    const logits = tf.mul(tf.matMul(qn, tf.transpose(kn)), 1 / temperature);
    // Log-sum-exp with the row maximum subtracted (its gradient cancels exactly).
    const shifted = tf.sub(logits, tf.max(logits, 1, true));
    const e = tf.exp(shifted);
    const sumE = tf.sum(e, 1, true);
    const batch = qIn.shape[0];
    const positive = tf.sum(tf.mul(shifted, tf.eye(batch)), 1, true);
    const ce = tf.mean(tf.sub(tf.log(sumE), positive));
    save([qIn, r, sumSq, kn, e, sumE]);
    return {
      value: tf.mul(ce, 2 * temperature) as tf.Scalar,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [qs, rs, ss, kns, es, sums] = saved;
        const dLogits = tf.mul(tf.sub(tf.div(es, sums), tf.eye(batch)), tf.mul(dy, 2 / batch));
        const dqn = tf.matMul(dLogits as tf.Tensor2D, kns as tf.Tensor2D);
        const along = tf.mul(tf.sum(tf.mul(dqn, qs), 1, true), tf.pow(rs, 3));
        const active = tf.cast(tf.greater(ss, epsSq), "float32");
        const dq = tf.sub(tf.mul(dqn, rs), tf.mul(qs, tf.mul(along, active)));
        return [dq, tf.zerosLike(kIn)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (
    a: tf.Tensor2D,
    b: tf.Tensor2D,
  ) => tf.Scalar;
  return op(q, k);
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
  // A backend's fused loss (@sit/core's seam; webgpu: one kernel each way) takes both pairs at once.
  const fused = contrastiveLossKernel(tf.getBackend());
  if (fused) {
    const { temperature, eps } = resolveOptions(options);
    const pairs = [
      [s1, t2],
      [s2, t1],
    ] as [tf.Tensor2D, tf.Tensor2D][];
    return fused(pairs, temperature, eps);
  }
  return tf.tidy(
    () => tf.add(mocoV3Loss(s1, t2, options), mocoV3Loss(s2, t1, options)) as tf.Scalar,
  );
}

/**
 * {@link sitContrastiveLoss} of both views stacked: `s = [s₁; s₂]` (student projections of the
 * corrupted views) and `t = [t₁; t₂]` (teacher projections of the clean views), `[2B, D]`, view 1's
 * rows first — the layout of a batch that runs both views at once. A backend's fused loss takes
 * the stacked tensors directly (webgpu: no slices, no tape copies of the halves); elsewhere the
 * views are cut apart and passed to {@link sitContrastiveLoss}.
 */
export function sitContrastiveLossOfViews(
  s: tf.Tensor,
  t: tf.Tensor,
  options: MocoV3Options = {},
): tf.Scalar {
  checkPair("s", s, "t", t);
  if (s.shape[0] % 2 !== 0)
    throw new ShapeError(
      `s: expected an even number of rows (two views of B samples stacked, [2B, D]), got shape [${s.shape.join(", ")}]`,
    );
  const crossViews = contrastiveLossKernel(tf.getBackend())?.crossViews;
  if (crossViews) {
    const { temperature, eps } = resolveOptions(options);
    return crossViews(s as tf.Tensor2D, t as tf.Tensor2D, temperature, eps);
  }
  return tf.tidy(() => {
    const b = s.shape[0] / 2;
    const half = (x: tf.Tensor, i: number) => tf.slice(x, [i * b, 0], [b, -1]);
    return sitContrastiveLoss(half(s, 0), half(s, 1), half(t, 0), half(t, 1), options);
  });
}
