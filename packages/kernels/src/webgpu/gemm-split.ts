import { type View, viewOf, VIEW_ALIGN } from "./encode";
import { type WebGpuInternals, scratchBuffer } from "./flat-buffers";
import { type GemmVariant, TILE, gemmBindings } from "./gemm-wgsl";
import type { StridedSum } from "./strided-sums";

// Split-K for the GEMMs whose output has few tiles and whose K is long: a weight gradient
// `dW = xᵀ·dy` sums over every token of the batch (K = batch·tokens, tens of thousands) into a
// small [in, out] matrix. ViT-Tiny's qkv gradient [192, 576] is 27 tiles of 64 × 64, its proj
// gradient 9: one workgroup per tile would leave most of a large GPU idle (an H100/H200 has 132
// multiprocessors) while each of those few workgroups walks the whole of K. (A few rows through a
// wide layer, e.g. a small batch's CLS tokens through a 4096-wide head, is the same case.) Split, workgroup z of
// the same dispatch sums its own range of K into its own slice of a scratch buffer, and one more
// dispatch adds the slices (and the column-sum slices of a bias gradient) into the output
// (strided-sums.ts: the fused block adds all of its weight gradients' slices in one). Only
// for variants without an epilogue that must follow the whole sum (bias, GELU derivative,
// residual, row factors) and in f32 (the f16 GEMM rounds its result once, after the whole sum);
// never with the LayerNorm prologue (each workgroup's row statistics need the whole of K, and its
// LN(A) output is not sliced).

/**
 * Workgroups to aim for: four per multiprocessor of a 132-SM H100/H200. Measured there
 * (gemm-webgpu, 2026-12-04): ViT-S's fc1 and fc2 weight gradients, 144 tiles of 64 over
 * K = 12,608 and not split under a target of 256, ran 3–5× slower than tfjs's own matMul (3.7 vs
 * 0.71 ms), and the split products with 10–29 slices reached 4–8 TFLOP/s against 15–26 for the
 * forward products: more slices, not fewer.
 */
const TARGET_GROUPS = 528;
/** The fewest K rows per slice: below this the extra slice traffic outweighs the parallelism. */
const MIN_SLICE_K = 512;
/** The most slices (bounds the scratch buffer: slices × M × N floats). */
const MAX_SLICES = 32;

let override: "auto" | number = "auto";

/**
 * Force the split of every eligible GEMM to `slices` (1: never split), or back to the automatic
 * choice with "auto" (for tests and benchmarks).
 */
export function setGemmSplitK(slices: "auto" | number): void {
  if (slices !== "auto" && !(Number.isInteger(slices) && slices >= 1))
    throw new RangeError(`setGemmSplitK slices: expected "auto" or an integer ≥ 1, got ${slices}`);
  override = slices;
}

/** The split-K setting ({@link setGemmSplitK}), as part of a recorded plan's key (encode-plan.ts). */
export function gemmSplitKSetting(): string {
  return String(override);
}

/**
 * K rows per slice (a multiple of BK) and the number of slices for `variant` on [M, N, K] with
 * output tiles of `tile` (the GEMM's own: gemm.ts picks 64 or 128).
 */
export function splitKFor(
  v: GemmVariant,
  m: number,
  n: number,
  k: number,
  tile: { BM: number; BN: number } = TILE,
): { kSplit: number; slices: number } {
  const whole = { kSplit: Math.max(k, 1), slices: 1 };
  if (v.half || v.bias || v.geluGrad || v.residual || v.scaleRows || v.lnA) return whole;
  let want: number;
  if (override !== "auto") want = override;
  else {
    const tiles = Math.ceil(m / tile.BM) * Math.ceil(n / tile.BN);
    want = Math.min(Math.ceil(TARGET_GROUPS / tiles), Math.floor(k / MIN_SLICE_K), MAX_SLICES);
  }
  if (want <= 1) return whole;
  // A multiple of the 64 tile's BK (16), hence of the 128 tile's (8).
  const kSplit = Math.ceil(Math.ceil(k / want) / TILE.BK) * TILE.BK;
  const slices = Math.ceil(k / kSplit);
  return slices > 1 ? { kSplit, slices } : whole;
}

const roundUp = (x: number, to: number) => Math.ceil(x / to) * to;

/** Floats of the slices of `variant` split in `slices` on [M, N]: C's, then S's at an aligned offset. */
export function sliceAreaFloats(v: GemmVariant, m: number, n: number, slices: number): number {
  const cSize = slices * m * n;
  return v.colSum ? roundUp(cSize, VIEW_ALIGN) + slices * n : cSize;
}

/**
 * Encode `variant` on [M, N, K] split in `slices` ranges of `kSplit` rows of K, into `area`
 * ({@link sliceAreaFloats} floats, starting aligned; by default a scratch buffer shared by every
 * split GEMM, so its sums must be encoded before the next split GEMM): slice z of C at z·M·N, of S
 * at z·N after C's. `encodeOne` records one GEMM dispatch with the given operands and z extent.
 * Returns the sums of the slices into the operands' C (and S), for encodeStridedSums.
 */
export function encodeSplitGemm(
  b: WebGpuInternals,
  v: GemmVariant,
  [m, n]: [number, number, number],
  operands: View[],
  { kSplit, slices }: { kSplit: number; slices: number },
  encodeOne: (operands: View[], kSplit: number, slices: number) => void,
  area?: View,
): StridedSum[] {
  const names = gemmBindings(v);
  const ci = names.indexOf("C");
  const si = names.indexOf("S");
  const cSize = slices * m * n;
  const floats = sliceAreaFloats(v, m, n, slices);
  const at = area ?? viewOf(b, scratchBuffer(b, "gemm-slices", floats), 0, floats);
  if (at.size < floats)
    throw new RangeError(`split GEMM area: expected ${floats} floats, got ${at.size}`);
  const partC: View = { buffer: at.buffer, offset: at.offset, size: cSize };
  const partS: View | null = v.colSum
    ? { buffer: at.buffer, offset: at.offset + roundUp(cSize, VIEW_ALIGN), size: slices * n }
    : null;
  const split = operands.map((o, i) => (i === ci ? partC : i === si && partS ? partS : o));
  encodeOne(split, kSplit, slices);
  const sums: StridedSum[] = [{ source: partC, stride: m * n, count: slices, out: operands[ci] }];
  if (partS) sums.push({ source: partS, stride: n, count: slices, out: operands[si] });
  return sums;
}
