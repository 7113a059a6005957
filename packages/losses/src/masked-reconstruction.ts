import * as tf from "@tensorflow/tfjs";
import { ShapeError, invalidArgument, maskedLossKernel } from "@sit/core";
import { checkFloatTensor, checkSameShape } from "./checks";

/** {@link maskedReconstructionLoss}'s defaults: SiT v3's (masked L1). */
export const RECONSTRUCTION_LOSS_DEFAULTS = { type: "l1", reduction: "masked" } as const;

/** Options of {@link maskedReconstructionLoss}; defaults are SiT v3's ({@link RECONSTRUCTION_LOSS_DEFAULTS}). */
export interface MaskedReconstructionOptions {
  /** `l1` (default, SiT/GMML): |x̂ − x|; `l2`: (x̂ − x)². */
  type?: "l1" | "l2";
  /**
   * `masked` (default): Σ d·m / Σ m over every (pixel, channel) element of the whole batch, i.e. the
   * mean over corrupted elements pooled over the batch (not per image); `all`: the plain mean over
   * every element (SiT v1), mask ignored.
   */
  reduction?: "masked" | "all";
}

/**
 * Reconstruction loss on NHWC images: `pred` and `target` `[B, H, W, C]` (target = the clean image
 * in normalised units), `mask` `[B, H, W]`, `[B, H, W, 1]` or `[B, H, W, C]` with 1 on corrupted
 * pixels (a per-pixel mask applies to every channel). With `reduction: "masked"` and an all-zero
 * mask the loss is 0 (the reference would divide 0 by 0). The mask is data: no gradient flows
 * into it.
 */
export function maskedReconstructionLoss(
  pred: tf.Tensor,
  target: tf.Tensor,
  mask: tf.Tensor | null | undefined,
  options: MaskedReconstructionOptions = {},
): tf.Scalar {
  const type = options.type ?? RECONSTRUCTION_LOSS_DEFAULTS.type;
  const reduction = options.reduction ?? RECONSTRUCTION_LOSS_DEFAULTS.reduction;
  if (type !== "l1" && type !== "l2") throw invalidArgument("type", type, '"l1" or "l2"');
  if (reduction !== "masked" && reduction !== "all")
    throw invalidArgument("reduction", reduction, '"masked" or "all"');
  checkFloatTensor("pred", pred, 4, "[B, H, W, C]");
  checkFloatTensor("target", target, 4, "[B, H, W, C]");
  checkSameShape("pred", pred, "target", target);
  if (reduction === "all") {
    return tf.tidy(() => {
      const d = tf.sub(pred, target);
      return tf.mean(type === "l1" ? tf.abs(d) : tf.square(d)) as tf.Scalar;
    });
  }
  if (!(mask instanceof tf.Tensor))
    throw invalidArgument(
      "mask",
      mask,
      'a tensor [B, H, W] or [B, H, W, 1] (needed by reduction "masked")',
    );
  const [B, H, W, C] = pred.shape;
  const ok =
    (mask.rank === 3 && tf.util.arraysEqual(mask.shape, [B, H, W])) ||
    (mask.rank === 4 && tf.util.arraysEqual(mask.shape, [B, H, W, 1])) ||
    (mask.rank === 4 && tf.util.arraysEqual(mask.shape, [B, H, W, C]));
  if (!ok)
    throw new ShapeError(
      `mask: expected shape [${B}, ${H}, ${W}], [${B}, ${H}, ${W}, 1] or [${B}, ${H}, ${W}, ${C}], got [${mask.shape.join(", ")}]`,
    );
  // A backend's fused loss (@sit/core's seam; webgpu: one kernel each way) for float32 masks.
  const fused = maskedLossKernel(tf.getBackend());
  if (fused && mask.dtype === "float32")
    return tf.tidy(() => {
      const m4 = (mask.rank === 3 ? tf.expandDims(mask, 3) : mask) as tf.Tensor4D;
      return fused(pred as tf.Tensor4D, target as tf.Tensor4D, m4, type);
    });
  return tf.tidy(() => {
    const m4 = tf.cast(mask.rank === 3 ? tf.expandDims(mask, 3) : mask, "float32");
    // Weight of every (pixel, channel) element: a per-pixel mask counts once per channel.
    const elements = m4.shape[3] === 1 ? tf.mul(tf.sum(m4), C) : tf.sum(m4);
    // An empty mask gives 0/1 = 0 instead of NaN.
    const denominator = tf.maximum(elements, 1e-12);
    return maskedLoss(type, m4, denominator)(pred, target);
  });
}

/**
 * `Σ |p − t|·m / n` (or squared) as one custom gradient: tfjs's autodiff of the composed ops
 * records ≈ 20 kernels and saves the differences twice; the hand-written backward is
 * `∂/∂p = sign(p − t)·m/n` (L1, PyTorch's sign: 0 where equal) or `2(p − t)·m/n` (L2), and
 * `∂/∂t = −∂/∂p`. The mask `m` and the count `n` are data (no gradient).
 */
function maskedLoss(
  type: "l1" | "l2",
  mask: tf.Tensor,
  denominator: tf.Tensor,
): (pred: tf.Tensor, target: tf.Tensor) => tf.Scalar {
  return tf.customGrad(((pred: tf.Tensor, target: tf.Tensor, save: tf.GradSaveFunc) => {
    const d = tf.sub(pred, target);
    const e = type === "l1" ? tf.abs(d) : tf.square(d);
    save([d, mask, denominator]);
    return {
      value: tf.div(tf.sum(tf.mul(e, mask)), denominator) as tf.Scalar,
      gradFunc: (dy: tf.Tensor, [ds, m, n]: tf.Tensor[]) => {
        const slope = type === "l1" ? tf.sign(ds) : tf.mul(ds, 2);
        const dPred = tf.mul(slope, tf.mul(m, tf.div(dy, n)));
        return [dPred, tf.neg(dPred)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (
    pred: tf.Tensor,
    target: tf.Tensor,
  ) => tf.Scalar;
}
