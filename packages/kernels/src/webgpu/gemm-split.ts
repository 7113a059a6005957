import { type View, encode, foldGroups, viewOf, VIEW_ALIGN } from "./encode";
import { type WebGpuInternals, scratchBuffer } from "./flat-buffers";
import { type GemmVariant, TILE, gemmBindings } from "./gemm-wgsl";

// Split-K for the GEMMs whose output has few tiles and whose K is long: a weight gradient
// `dW = xᵀ·dy` sums over every token of the batch (K = batch·tokens, tens of thousands) into a
// small [in, out] matrix. ViT-Tiny's qkv gradient [192, 576] is 27 tiles of 64 × 64, its proj
// gradient 9: one workgroup per tile would leave most of a large GPU idle (an H100/H200 has 132
// multiprocessors) while each of those few workgroups walks the whole of K. (A few rows through a
// wide layer, e.g. a small batch's CLS tokens through a 4096-wide head, is the same case.) Split, workgroup z of
// the same dispatch sums its own range of K into its own slice of a scratch buffer, and one more
// dispatch adds the slices (and the column-sum slices of a bias gradient) into the output. Only
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

/**
 * Encode `variant` on [M, N, K] split in `slices` ranges of `kSplit` rows of K: the GEMM into a
 * scratch buffer (slice z of C at z·M·N, of S at z·N), then the sum of the slices into the
 * operands' C (and S). `encodeOne` records one GEMM dispatch with the given operands and z extent.
 */
export function encodeSplitGemm(
  b: WebGpuInternals,
  v: GemmVariant,
  [m, n]: [number, number, number],
  operands: View[],
  { kSplit, slices }: { kSplit: number; slices: number },
  encodeOne: (operands: View[], kSplit: number, slices: number) => void,
): void {
  const names = gemmBindings(v);
  const ci = names.indexOf("C");
  const si = names.indexOf("S");
  const cSize = slices * m * n;
  const sOffset = roundUp(cSize, VIEW_ALIGN);
  const scratch = scratchBuffer(b, "gemm-slices", v.colSum ? sOffset + slices * n : cSize);
  const partC = viewOf(b, scratch, 0, cSize);
  const partS = v.colSum ? viewOf(b, scratch, sOffset, slices * n) : null;
  const split = operands.map((o, i) => (i === ci ? partC : i === si && partS ? partS : o));
  encodeOne(split, kSplit, slices);
  const sums: View[] = [partC, operands[ci], ...(partS ? [partS, operands[si]] : [])];
  const total = m * n + (v.colSum ? n : 0);
  encode(
    b,
    `SitGemmSliceSum_${v.colSum ? 1 : 0}`,
    () => sliceSumWgsl(v.colSum),
    sums,
    [{ i: m * n }, { i: n }, { i: slices }],
    foldGroups(b, Math.ceil(total / 256)),
  );
}

/** C[i] = Σ_z P[z·MN + i] (and S[j] = Σ_z PS[z·N + j]), one thread per output element. */
function sliceSumWgsl(colSum: boolean): string {
  const bindings = ["P", "C", ...(colSum ? ["PS", "S"] : [])]
    .map((name, i) => `@group(0) @binding(${i}) var<storage, read_write> ${name} : array<f32>;`)
    .join("\n");
  return /* wgsl */ `
struct U { mn : i32, n : i32, slices : i32 };
${bindings}
@group(0) @binding(${colSum ? 4 : 2}) var<uniform> u : U;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) nw : vec3<u32>) {
  let i = i32(gid.x + gid.y * nw.x * 256u);
  if (i < u.mn) {
    var s = 0.0;
    for (var z = 0; z < u.slices; z++) { s += P[z * u.mn + i]; }
    C[i] = s;
  }${
    colSum
      ? `
  else if (i < u.mn + u.n) {
    let j = i - u.mn;
    var s = 0.0;
    for (var z = 0; z < u.slices; z++) { s += PS[z * u.n + j]; }
    S[j] = s;
  }`
      : ""
  }
}`;
}
