import type * as tf from "@tensorflow/tfjs";
import { VIEW_ALIGN, type View, viewOf } from "./encode";
import type { WebGpuInternals } from "./flat-buffers";
import { partialsSize } from "./layer-norm-grad";

// The fused transformer block's flat buffers (block.ts): the workspace the forward writes and the
// tape saves, and the backward's temporaries. Each part starts 256-byte aligned, so that it can be
// bound as its own storage range.

/**
 * Inputs of the forward that the backward reads, saved on the tape as handles on their tensors
 * (tape.ts: no copies), in this order after the workspace. (As with PyTorch's saved tensors, a
 * weight updated in place between the forward and the backward would change the gradients; the
 * optimisers here update after the backward.)
 */
export const SAVED_INPUTS = [
  "x",
  "ln1g",
  "qkvW",
  "projW",
  "ln2g",
  "fc1W",
  "fc2W",
  "s0",
  "s1",
] as const;

const align = (n: number) => Math.ceil(n / VIEW_ALIGN) * VIEW_ALIGN;

/** The block's sizes: batch, tokens, width D, MLP width, rows M = batch·tokens. */
export interface BlockDims {
  batch: number;
  n: number;
  d: number;
  hidden: number;
  m: number;
  /** Mixed precision: fc1's output u and its gradient du are f16 (two per 32-bit word). */
  half?: boolean;
}

/** 32-bit words of the `m × hidden` activation u (and du): f16 pairs under mixed precision. */
function uWords({ m, hidden, half }: BlockDims): number {
  return half ? Math.max(1, Math.ceil((m * hidden) / 2)) : m * hidden;
}

/**
 * The workspace's parts (elements; each starts 256-byte aligned): the activations the backward
 * reads — LN1(x), qkv, the attention output, h, LN2(h), fc1's pre-activation. (The inputs it reads
 * are saved on the tape instead: {@link SAVED_INPUTS}.)
 */
export function workspaceLayout(dims: BlockDims) {
  const { d, m } = dims;
  const sizes = {
    a1: m * d,
    qkv: m * 3 * d,
    o: m * d,
    h: m * d,
    a2: m * d,
    u: uWords(dims),
  };
  return { sizes, total: totalOf(sizes) };
}

/** The backward's temporaries: gradients of the activations, attention row statistics, both LayerNorms' partial sums. */
export function gradTempLayout(dims: BlockDims, heads: number) {
  const { batch, n, d, m } = dims;
  const sizes = {
    du: uWords(dims),
    da: m * d,
    dh: m * d,
    dO: m * d,
    stats: batch * heads * n * 2,
    dqkv: m * 3 * d,
    // LN1's then LN2's partial (dγ, dβ) sums, finished together (block-wgsl.ts).
    partials1: partialsSize(m, d),
    partials2: partialsSize(m, d),
  };
  return { sizes, total: totalOf(sizes) };
}

/** Views of the parts of a flat tensor laid out as `sizes` (in that order). */
export function carve<K extends string>(
  b: WebGpuInternals,
  t: tf.TensorInfo,
  sizes: Record<K, number>,
): Record<K, View> {
  const out = {} as Record<K, View>;
  let offset = 0;
  for (const k of Object.keys(sizes) as K[]) {
    out[k] = viewOf(b, t, offset, sizes[k]);
    offset += align(sizes[k]);
  }
  return out;
}

export function totalOf(sizes: Record<string, number>): number {
  return Object.values(sizes).reduce((p, q) => p + align(q), 0);
}
