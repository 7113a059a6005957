import { totalOf } from "./encode";
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

/** The backward's temporaries: gradients of the activations and the attention's row statistics. */
export function gradTempLayout(dims: BlockDims, heads: number) {
  const { batch, n, d, m } = dims;
  const sizes = {
    du: uWords(dims),
    da: m * d,
    dh: m * d,
    dO: m * d,
    stats: batch * heads * n * 2,
    dqkv: m * 3 * d,
  };
  return { sizes, total: totalOf(sizes) };
}

/** The backward's four weight-gradient products. */
export type WeightGradient = "fc2" | "fc1" | "proj" | "qkv";

/** `[M, N, K]` of each weight gradient dW = aᵀ·g: [in, out] summed over the M = batch·tokens rows. */
export function weightGradientShapes({
  d,
  hidden,
  m,
}: BlockDims): Record<WeightGradient, [number, number, number]> {
  return { fc2: [hidden, d, m], fc1: [d, hidden, m], proj: [d, d, m], qkv: [d, 3 * d, m] };
}

/**
 * What the backward's last dispatch sums (strided-sums.ts), in one buffer so that one binding
 * reads it all: both LayerNorms' partial (dγ, dβ) sums, then the split-K slices of each weight
 * gradient (`slices`: its floats, 0 when unsplit; gemm.ts's gemmSliceFloats).
 */
export function sumsLayout(dims: BlockDims, slices: Record<WeightGradient, number>) {
  const { d, m } = dims;
  const sizes = { partials1: partialsSize(m, d), partials2: partialsSize(m, d), ...slices };
  return { sizes, total: totalOf(sizes) };
}
