import * as tf from "@tensorflow/tfjs";
import { withGradient } from "../custom-grad";
import type { AttentionResult, KernelSignatures, ResolvedAttentionOptions } from "../registry";
import { heapSimdAvailable, heapSoftmax, heapSoftmaxBackward } from "./heap-ops";

/**
 * Batched product through one `depthwiseConv2d` (XNNPACK on wasm, multithreaded):
 * `a [m, k, G]` (the batch G last) times `b [k, G, n]` → `[m, G, n]`, i.e. for every g,
 * `out[:, g, :] = a[:, :, g] · b[:, g, :]`. The conv sees `a` as a 1×… image `[1, m, k, G]` with G
 * channels and `b` as a `1×k` filter with channel multiplier n. On wasm a small batched `matMul`
 * (attention's `[65×64]·[64×65]` per head) runs ≈ 3 GFLOP/s; this route is several times faster.
 */
export function batchMatMulBatchLast(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [m, k, g] = a.shape;
  const n = b.shape[2];
  const y = tf.depthwiseConv2d(
    tf.reshape(a, [1, m, k, g]) as tf.Tensor4D,
    tf.reshape(b, [1, k, g, n]) as tf.Tensor4D,
    1,
    "valid",
  );
  return tf.reshape(y, [m, g, n]);
}

/** [N, G, hd] → [N, hd, G] (and back: the same swap). */
const swapLast = (x: tf.Tensor): tf.Tensor3D => tf.transpose(x, [0, 2, 1]) as tf.Tensor3D;
/** [N1, G, N2] → [N2, N1, G]. */
const rotate = (x: tf.Tensor): tf.Tensor3D => tf.transpose(x, [2, 0, 1]) as tf.Tensor3D;
/** [N, G, hd] → [hd, G, N]. */
const reverse = (x: tf.Tensor): tf.Tensor3D => tf.transpose(x, [2, 1, 0]) as tf.Tensor3D;

/**
 * `softmax(scale·scores)` over the last axis: one heap pass (activation-kernels.wat) where the
 * SIMD modules run, else tfjs's Multiply + Softmax.
 */
function scaledSoftmax(scores: tf.Tensor3D, scale: number): tf.Tensor3D {
  return heapSimdAvailable() && scores.dtype === "float32"
    ? heapSoftmax(scores, scale)
    : (tf.softmax(tf.mul(scores, scale)) as tf.Tensor3D);
}

/** Its gradient with respect to the unscaled scores: `scale·P ⊙ (dP − rowsum(dP ⊙ P))`. */
function scaledSoftmaxGrad(dP: tf.Tensor3D, p: tf.Tensor3D, scale: number): tf.Tensor3D {
  if (heapSimdAvailable() && dP.dtype === "float32") return heapSoftmaxBackward(dP, p, scale);
  return tf.mul(tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))), scale) as tf.Tensor3D;
}

/**
 * Attention with tokens first and the (batch·head) axis G in the middle: `q`, `k`, `v` are
 * `[N, G, hd]`, the scale applied inside the softmax. Returns the output `[Nq, G, hd]` and the
 * probabilities `[Nq, G, Nk]`. Every product is a {@link batchMatMulBatchLast}; the layouts are
 * chosen so that the softmax runs over the last axis.
 */
function forwardTokensFirst(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, scale: number) {
  const scores = batchMatMulBatchLast(swapLast(q), reverse(k)); // [Nq, G, Nk]
  const p = scaledSoftmax(scores, scale);
  const out = batchMatMulBatchLast(swapLast(p), v); // [Nq, G, hd]
  return { out, p };
}

/** dOut [Nq, G, hd] → [dQ, dK, dV] in `[N, G, hd]`. */
function backwardTokensFirst(
  dOut: tf.Tensor3D,
  [q, k, v, p]: tf.Tensor[],
  scale: number,
): tf.Tensor3D[] {
  const dV = batchMatMulBatchLast(rotate(p), dOut); // Σ_i P[i,j]·dO[i,:]
  const dP = batchMatMulBatchLast(swapLast(dOut), reverse(v)); // dO·Vᵀ → [Nq, G, Nk]
  const dS = scaledSoftmaxGrad(dP, p as tf.Tensor3D, scale); // carries the scale
  const dQ = batchMatMulBatchLast(swapLast(dS), k as tf.Tensor3D);
  const dK = batchMatMulBatchLast(rotate(dS), q as tf.Tensor3D);
  return [dQ, dK, dV];
}

/** [N, B, H, hd] (tokens first) ↔ [B, N, H·hd]. */
function toTokensFirst(x: tf.Tensor, h: number): tf.Tensor3D {
  const [b, n, d] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [b, n, h, d / h]), [1, 0, 2, 3]), [n, b * h, d / h]);
}
function fromTokensFirst(x: tf.Tensor, b: number): tf.Tensor3D {
  const [n, g, hd] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [n, b, g / b, hd]), [1, 0, 2, 3]), [
    b,
    n,
    (g / b) * hd,
  ]);
}

/** Probabilities [Nq, B·H, Nk] → [B, H, Nq, Nk] (the public layout). */
function publicProbabilities(p: tf.Tensor, b: number): tf.Tensor4D {
  const [nq, g, nk] = p.shape;
  return tf.transpose(tf.reshape(p, [nq, b, g / b, nk]), [1, 2, 0, 3]);
}

function withProbabilities(
  run: (capture: (p: tf.Tensor) => void) => tf.Tensor3D,
  wantProbs: boolean,
  b: number,
): AttentionResult {
  let kept: tf.Tensor4D | undefined;
  const output = run((p) => {
    if (wantProbs) kept = tf.keep(publicProbabilities(p, b));
  });
  if (!kept) return { output };
  const probabilities = tf.clone(kept); // tracked by the caller's scope
  kept.dispose();
  return { output, probabilities };
}

/** wasm `multiHeadAttention`: the portable maths with every product through depthwiseConv2d. */
export const wasmMultiHeadAttention: KernelSignatures["multiHeadAttention"] = (
  q,
  k,
  v,
  options: ResolvedAttentionOptions,
) => {
  const { numHeads: h, scale } = options;
  const b = q.shape[0];
  return withProbabilities(
    (capture) =>
      withGradient<[tf.Tensor3D, tf.Tensor3D, tf.Tensor3D], tf.Tensor3D>(([qi, ki, vi], save) => {
        const qt = toTokensFirst(qi, h);
        const kt = toTokensFirst(ki, h);
        const vt = toTokensFirst(vi, h);
        const { out, p } = forwardTokensFirst(qt, kt, vt, scale);
        save([qt, kt, vt, p]);
        capture(p);
        return {
          value: fromTokensFirst(out, b),
          backward: (dy, saved) =>
            backwardTokensFirst(toTokensFirst(dy, h), saved, scale).map((g) =>
              fromTokensFirst(g, b),
            ),
        };
      })(q, k, v),
    options.returnProbabilities,
    b,
  );
};

/**
 * wasm `packedSelfAttention`: one rank-4 transpose moves `qkv [B, N, 3, D]` to
 * `[3, N, B, D]` = `[3, N, B·H, hd]` (tokens first), from which q, k and v are contiguous slices;
 * the gradient goes back as one stack along the leading axis (contiguous copies) and one transpose.
 * (Per-part gathers along the "which of three" axis cost ≈ 20× a whole-tensor transpose on wasm.)
 */
export const wasmPackedSelfAttention: KernelSignatures["packedSelfAttention"] = (
  qkv,
  options: ResolvedAttentionOptions,
) => {
  const { numHeads: h, scale } = options;
  const [b, n, d3] = qkv.shape;
  const d = d3 / 3;
  const hd = d / h;
  return withProbabilities(
    (capture) =>
      withGradient<[tf.Tensor3D], tf.Tensor3D>(([x], save) => {
        const parts = tf.transpose(tf.reshape(x, [b, n, 3, d]), [2, 1, 0, 3]); // [3, N, B, D]
        const part = (i: number) =>
          tf.reshape(tf.slice(parts, [i, 0, 0, 0], [1, n, b, d]), [n, b * h, hd]) as tf.Tensor3D;
        const [q, k, v] = [part(0), part(1), part(2)];
        const { out, p } = forwardTokensFirst(q, k, v, scale);
        save([q, k, v, p]);
        capture(p);
        return {
          value: fromTokensFirst(out, b),
          backward: (dy, saved) => {
            const grads = backwardTokensFirst(toTokensFirst(dy, h), saved, scale);
            // [N, B·H, hd] ×3 → [3, N, B, D] → [B, N, 3, D] = [B, N, 3D].
            const stacked = tf.reshape(tf.stack(grads, 0), [3, n, b, d]);
            return [tf.reshape(tf.transpose(stacked, [2, 1, 0, 3]), [b, n, d3])];
          },
        };
      })(qkv),
    options.returnProbabilities,
    b,
  );
};
