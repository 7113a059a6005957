import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber, describeValue } from "@sit/core";
import { withGradient } from "./custom-grad";
import { type AttentionResult, type ResolvedAttentionOptions, findOverride } from "./registry";

/** Options of {@link multiHeadAttention}. */
export interface AttentionOptions {
  /** Number of heads; must divide the model width D. */
  numHeads: number;
  /** Multiplier of the logits QKᵀ; default `headDim^-0.5`. */
  scale?: number;
  /** Also return the softmax probabilities `[B, H, Nq, Nk]` (not differentiable). Default false. */
  returnProbabilities?: boolean;
}

/** [B, N, D] → [B, H, N, hd]. */
function splitHeads(x: tf.Tensor, h: number): tf.Tensor4D {
  const [b, n, d] = x.shape;
  return tf.transpose(tf.reshape(x, [b, n, h, d / h]), [0, 2, 1, 3]);
}

/** [B, H, N, hd] → [B, N, D]. */
function mergeHeads(x: tf.Tensor): tf.Tensor3D {
  const [b, h, n, hd] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, n, h * hd]);
}

const SWAP_LAST = [0, 1, 3, 2];

/**
 * The forward in head layout. Returns the output [B,Nq,D], the tensors the backward needs and
 * the probabilities. Every product is a plain batched matMul: transposed operands are
 * materialised with explicit transposes (cheap on wasm, unlike matMul's transpose flags).
 */
function attentionForward(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, o: ResolvedAttentionOptions) {
  const qh = tf.mul(splitHeads(q, o.numHeads), o.scale); // scaled queries
  const [b, nk, d] = k.shape;
  const kt = tf.transpose(tf.reshape(k, [b, nk, o.numHeads, d / o.numHeads]), [0, 2, 3, 1]);
  const vh = splitHeads(v, o.numHeads);
  const probs = tf.softmax(tf.matMul(qh, kt)) as tf.Tensor4D;
  const output = mergeHeads(tf.matMul(probs, vh));
  return { output, saved: [qh, kt, vh, probs] as tf.Tensor[], probs };
}

/** dO [B,Nq,D] → [dQ, dK, dV] each in [B,N,D] layout. */
function attentionBackward(dO: tf.Tensor, saved: tf.Tensor[], o: ResolvedAttentionOptions) {
  const [qh, kt, vh, p] = saved;
  const dOh = splitHeads(dO, o.numHeads);
  const dV = tf.matMul(tf.transpose(p, SWAP_LAST), dOh);
  const dP = tf.matMul(dOh, tf.transpose(vh, SWAP_LAST));
  // Softmax backward: dS = P ⊙ (dP − rowsum(dP ⊙ P)).
  const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true)));
  const dQ = tf.mul(tf.matMul(dS, tf.transpose(kt, SWAP_LAST)), o.scale);
  const dK = tf.matMul(tf.transpose(dS, SWAP_LAST), qh); // qh already carries the scale
  return [mergeHeads(dQ), mergeHeads(dK), mergeHeads(dV)];
}

/**
 * Run `forward` inside a custom-gradient op whose single output is the attention output; the
 * probabilities, when asked for, leave the op as a kept side output and are re-tracked by the
 * caller's scope (so the caller's tidy disposes them as usual).
 */
function runWithProbabilities(
  call: (capture: (p: tf.Tensor4D) => void) => tf.Tensor3D,
  wantProbs: boolean,
): AttentionResult {
  let kept: tf.Tensor4D | undefined;
  const output = call((p) => {
    if (wantProbs) kept = tf.keep(tf.clone(p));
  });
  if (!kept) return { output };
  const probabilities = tf.clone(kept); // tracked by the current scope
  kept.dispose();
  return { output, probabilities };
}

/** Portable `multiHeadAttention` (see {@link multiHeadAttention}). */
export function portableMultiHeadAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  options: ResolvedAttentionOptions,
): AttentionResult {
  return runWithProbabilities((capture) => {
    const op = withGradient<[tf.Tensor3D, tf.Tensor3D, tf.Tensor3D], tf.Tensor3D>(
      ([qi, ki, vi], save) => {
        const f = attentionForward(qi, ki, vi, options);
        save(f.saved);
        capture(f.probs);
        return { value: f.output, backward: (dy, saved) => attentionBackward(dy, saved, options) };
      },
    );
    return op(q, k, v);
  }, options.returnProbabilities);
}

/** Portable `packedSelfAttention` (see {@link packedSelfAttention}). */
export function portablePackedSelfAttention(
  qkv: tf.Tensor3D,
  options: ResolvedAttentionOptions,
): AttentionResult {
  return runWithProbabilities((capture) => {
    const op = withGradient<[tf.Tensor3D], tf.Tensor3D>(([x], save) => {
      const [b, n, d3] = x.shape;
      const d = d3 / 3;
      // tf.slice, not stridedSlice/split: only slice has a gradient (and a fast kernel) everywhere.
      const q = tf.slice(x, [0, 0, 0], [b, n, d]);
      const k = tf.slice(x, [0, 0, d], [b, n, d]);
      const v = tf.slice(x, [0, 0, 2 * d], [b, n, d]);
      const f = attentionForward(q, k, v, options);
      save(f.saved);
      capture(f.probs);
      return {
        value: f.output,
        backward: (dy, saved) => [tf.concat(attentionBackward(dy, saved, options), 2)],
      };
    });
    return op(qkv);
  }, options.returnProbabilities);
}

function resolveOptions(d: number, options: AttentionOptions): ResolvedAttentionOptions {
  if (options === null || typeof options !== "object")
    throw new ConfigError(
      `attention options: expected { numHeads, scale? }, got ${describeValue(options)}`,
    );
  const numHeads = checkNumber("numHeads", options.numHeads, { integer: true, min: 1 });
  if (d % numHeads !== 0)
    throw new ConfigError(
      `numHeads: expected a divisor of the model width ${d}, got ${describeValue(numHeads)}`,
    );
  const scale =
    options.scale === undefined
      ? (d / numHeads) ** -0.5
      : checkNumber("scale", options.scale, { min: 0, minExclusive: true });
  return { numHeads, scale, returnProbabilities: options.returnProbabilities === true };
}

function checkRank3(name: string, t: unknown): tf.Tensor3D {
  if (!(t instanceof tf.Tensor) || t.rank !== 3 || t.dtype !== "float32")
    throw new ShapeError(`${name}: expected a float32 tensor [B, N, D], got ${describeValue(t)}`);
  return t as tf.Tensor3D;
}

/**
 * Multi-head scaled dot-product attention, `softmax(Q·Kᵀ·scale)·V` per head, from
 * `q [B, Nq, D]`, `k [B, Nk, D]`, `v [B, Nk, D]` (heads are contiguous slices of D, as in
 * timm). Built from reshape/transpose/matMul (no einsum); the gradient is written out with
 * explicit transposes so that no product uses matMul's transpose flags. Returns the merged
 * output `[B, Nq, D]` and, on request, the probabilities. Dispatches to a backend override when
 * one is registered.
 */
export function multiHeadAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  options: AttentionOptions,
): AttentionResult {
  const q3 = checkRank3("multiHeadAttention q", q);
  const k3 = checkRank3("multiHeadAttention k", k);
  const v3 = checkRank3("multiHeadAttention v", v);
  const [b, , d] = q3.shape;
  if (k3.shape[0] !== b || k3.shape[2] !== d)
    throw new ShapeError(`multiHeadAttention k: expected shape [${b}, *, ${d}], got [${k3.shape}]`);
  if (!tf.util.arraysEqual(v3.shape, k3.shape))
    throw new ShapeError(
      `multiHeadAttention v: expected k's shape [${k3.shape}], got [${v3.shape}]`,
    );
  const resolved = resolveOptions(d, options);
  const impl = findOverride("multiHeadAttention", tf.getBackend()) ?? portableMultiHeadAttention;
  return impl(q3, k3, v3, resolved);
}

/**
 * Self-attention on the packed output of a fused qkv projection, `qkv [B, N, 3D]` (q, k, v in
 * that order along the last axis, as timm's `attn.qkv`). Same maths as
 * {@link multiHeadAttention}; the split happens inside the op (its gradient is one concat), so the
 * model keeps a single `[D, 3D]` weight with timm's name.
 */
export function packedSelfAttention(qkv: tf.Tensor, options: AttentionOptions): AttentionResult {
  const x = checkRank3("packedSelfAttention qkv", qkv);
  if (x.shape[2] % 3 !== 0)
    throw new ShapeError(
      `packedSelfAttention qkv: expected a last axis of 3·D (q, k, v packed), got [${x.shape}]`,
    );
  const resolved = resolveOptions(x.shape[2] / 3, options);
  const impl = findOverride("packedSelfAttention", tf.getBackend()) ?? portablePackedSelfAttention;
  return impl(x, resolved);
}
