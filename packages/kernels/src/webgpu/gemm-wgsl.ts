import { PHI_WGSL } from "./gelu";
import { welfordAdd, welfordMergeFn } from "./reductions";

/**
 * What one GEMM shader does: `C[M,N] = pre(op(A))[M,K] · op(B)[K,N]` (pre: GELU or LayerNorm,
 * optional), then the epilogue `(C + bias[n]) · s[m] · gelu′(H[m,n]) + R[m,n]` (each part
 * optional; s a per-sample factor), and optionally the column sums of op(B) over K (`S[N]`, a
 * bias gradient when B is the incoming gradient). Shapes are uniforms, so one pipeline serves
 * every shape of a variant.
 */
export interface GemmVariant {
  /** A is stored `[K, M]` (op(A) = Aᵀ). */
  transA: boolean;
  /** B is stored `[N, K]` (op(B) = Bᵀ). */
  transB: boolean;
  /** Apply exact GELU to A's elements as they are loaded (the prologue). */
  geluA: boolean;
  /** Add `bias[N]` to each row. */
  bias: boolean;
  /** Multiply by gelu′(H) elementwise, `H [M, N]` (the backward of a GELU prologue). */
  geluGrad: boolean;
  /** Add `R [M, N]` (a residual). */
  residual: boolean;
  /**
   * Multiply output row m by `Sc[m / rowsPer]` before the residual (stochastic depth: one factor
   * per sample of `rowsPer` rows).
   */
  scaleRows: boolean;
  /** Multiply B's row k by `Sc[k / rowsPer]` as it is loaded (the same, in a weight gradient). */
  scaleB: boolean;
  /** Also write the column sums of op(B) over K to `S[N]`. */
  colSum: boolean;
  /**
   * The LayerNorm prologue: op(A) = LN(X) over K, `(x − μ)·rstd·Gamma[k] + Beta[k]` per row of
   * `X [M, K]` (stored as A, not transposed), μ and the biased variance of the row in f32,
   * rstd = 1/√(var + eps) with `eps` a uniform — what the block's LayerNorm kernel computes
   * (reductions.ts), so the GEMM that follows a LayerNorm reads X instead. Not with transA or
   * geluA; never split along K (every workgroup needs whole rows).
   */
  lnA?: boolean;
  /**
   * With lnA, also write LN(X) to `Y [M, K]` (what a backward reads), stored as A is (f16 when A
   * is f16-stored, else f32), by the workgroups of the first column tile only: once per element.
   */
  lnOut?: boolean;
  /**
   * Mixed precision (absent: the f32 GEMM). Present: op(A) and op(B) are rounded to f16 as they
   * are loaded (after the GELU or LayerNorm prologue and the row factors) and staged in f16 tiles, products
   * accumulate in f32, and the result is rounded to f16 — PyTorch autocast's f16 GEMM — after the
   * bias (rounded to f16 too: autocast casts it with the weight) and again after the GELU derivative (an f16 op in autocast);
   * the row factors and residual then apply in f32, and S is rounded to f16 too. Overflow gives
   * ±inf (what a loss scaler looks for). The list names the bindings *stored* as f16 (two per
   * 32-bit word; views still count 32-bit words); the others are f32.
   */
  half?: readonly HalfBinding[];
}

/** Bindings that a mixed-precision variant may store as f16. */
export type HalfBinding = "A" | "B" | "H" | "R" | "C" | "S";

/** `variant` as its f16 GEMM with `stored` bindings in f16 storage when `half`, else unchanged. */
export function precisionOf(
  half: boolean | undefined,
  variant: GemmVariant,
  stored: HalfBinding[] = [],
): GemmVariant {
  return half ? { ...variant, half: stored } : variant;
}

/** Output tile `BM × BN` per workgroup of 16 × 16 threads (4 × 4 outputs each), K in steps of `BK`. */
export const TILE = { BM: 64, BN: 64, BK: 16 } as const;

/**
 * The two tile configurations: 64 (this file's {@link gemmWgsl}, 4 × 4 outputs per thread) and 128
 * (gemm-wgsl-128.ts, 128 × 128 per workgroup, 8 × 8 per thread, vec4 shared-memory reads).
 */
export type GemmTile = 64 | 128;
export const TILES = { 64: TILE, 128: { BM: 128, BN: 128, BK: 8 } } as const;

/** A short, unique cache key of a variant. */
export function gemmKey(v: GemmVariant, tile: GemmTile = 64): string {
  const bits = [v.transA, v.transB, v.geluA, v.bias, v.geluGrad, v.residual, v.colSum];
  bits.push(v.scaleRows, v.scaleB);
  const ln = v.lnA ? (v.lnOut ? "_lnY" : "_ln") : v.lnOut ? "_Y" : "";
  const half = v.half ? `_h${[...v.half].sort().join("")}` : "";
  // (The 64 tile's keys are unchanged, so profiles stay comparable across versions.)
  return `SitGemm_${bits.map((b) => (b ? 1 : 0)).join("")}${ln}${half}${tile === 128 ? "_t128" : ""}`;
}

/** Throw on a variant whose flags contradict each other (before any WGSL is built or encoded). */
export function checkGemmVariant(v: GemmVariant): void {
  const clash = v.lnA
    ? v.transA
      ? "lnA normalizes the rows of A stored [M, K], so it cannot be combined with transA"
      : v.geluA
        ? "lnA and geluA are both prologues of A; a variant has at most one"
        : null
    : v.lnOut
      ? "lnOut writes LN(A), so it needs lnA"
      : null;
  if (clash) throw new Error(`GEMM variant ${gemmKey(v)}: ${clash}`);
}

/**
 * The storage bindings of a variant, in binding order (the uniforms
 * `U {M, N, K, rowsPer, kSplit, eps}` follow):
 * read-only inputs first, then the written outputs.
 */
export function gemmBindings(v: GemmVariant): string[] {
  return [
    "A",
    "B",
    ...(v.lnA ? ["Gamma", "Beta"] : []),
    ...(v.bias ? ["Bias"] : []),
    ...(v.geluGrad ? ["H"] : []),
    ...(v.residual ? ["R"] : []),
    ...(v.scaleRows || v.scaleB ? ["Sc"] : []),
    "C",
    ...(v.colSum ? ["S"] : []),
    ...(v.lnOut ? ["Y"] : []),
  ];
}

/**
 * WGSL of a variant. Each thread keeps a 4 × 4 block of C in registers, at rows `ty + 16·i` and
 * columns `tx + 16·j` of the tile (so that neighbouring threads read neighbouring shared-memory
 * words and write neighbouring addresses). Tiles of op(A) and op(B) are staged in workgroup memory
 * with loads along the stored contiguous axis (coalesced for either layout) and zero-filled past
 * the edges, so any M, N, K work. Barriers are only under workgroup-uniform control flow.
 */
export function gemmWgsl(v: GemmVariant): string {
  const { BM, BN, BK } = TILE;
  const { header, read, tile, toTile, fromTile, epilogue, sumValue, lnStats, lnApply } =
    gemmParts(v);
  // Element e of the tile's BM·BK (or BK·BN) loads, mapped so that consecutive threads read
  // consecutive addresses of the stored matrix.
  const loadA = v.transA
    ? "let mm = e % BM; let kk = e / BM; let idx = (k0 + kk) * u.M + row0 + mm;"
    : "let kk = e % BK; let mm = e / BK; let idx = (row0 + mm) * u.K + k0 + kk;";
  const loadB = v.transB
    ? "let kk = e % BK; let nn = e / BK; let idx = (col0 + nn) * u.K + k0 + kk;"
    : "let nn = e % BN; let kk = e / BN; let idx = (k0 + kk) * u.N + col0 + nn;";
  return /* wgsl */ `${header}
const BM = ${BM};
const BN = ${BN};
const BK = ${BK};
var<workgroup> As : array<array<${tile}, BM>, BK>;
var<workgroup> Bs : array<array<${tile}, BN>, BK>;${v.half && v.colSum ? "\nvar<workgroup> CsumScratch : array<array<f32, BN>, BK>;" : ""}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_id) lid : vec3<u32>) {
  let tx = i32(lid.x);
  let ty = i32(lid.y);
  let tid = ty * 16 + tx;
  let row0 = i32(wid.y) * BM;
  let col0 = i32(wid.x) * BN;
  var acc : array<array<f32, 4>, 4>;
  var csum : array<f32, 4>;
  // Split K (gemm-split.ts): workgroup z sums K rows [kBegin, kEnd) into its own slice of C (and
  // S); one slice, the whole of K, when unsplit.
  let kBegin = i32(wid.z) * u.kSplit;
  let kEnd = min(u.K, kBegin + u.kSplit);
  let cBase = i32(wid.z) * u.M * u.N;
  ${lnStats}
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
    for (var l = 0; l < ${(BM * BK) / 256}; l++) {
      let e = tid + l * 256;
      ${loadA}
      var a = 0.0;
      if (row0 + mm < u.M && k0 + kk < kEnd) {
        a = ${read("A", "idx")};
        ${v.geluA ? "a = sitGelu(a);" : ""}${lnApply("a", "mm", "k0 + kk", "idx")}
      }
      As[kk][mm] = ${toTile("a")};
    }
    for (var l = 0; l < ${(BN * BK) / 256}; l++) {
      let e = tid + l * 256;
      ${loadB}
      var b = 0.0;
      if (col0 + nn < u.N && k0 + kk < kEnd) {
        b = ${read("B", "idx")};
        ${v.scaleB ? "b *= Sc[(k0 + kk) / u.rowsPer];" : ""}
      }
      Bs[kk][nn] = ${toTile("b")};
    }
    workgroupBarrier();
    for (var kk = 0; kk < BK; kk++) {
      var a : array<f32, 4>;
      var b : array<f32, 4>;
      for (var i = 0; i < 4; i++) { a[i] = ${fromTile("As[kk][ty + 16 * i]")}; }
      for (var j = 0; j < 4; j++) { b[j] = ${fromTile("Bs[kk][tx + 16 * j]")}; }
      for (var i = 0; i < 4; i++) {
        for (var j = 0; j < 4; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); }
      }
    }
    ${v.colSum ? `for (var j = 0; j < 4; j++) { csum[j] += ${fromTile("Bs[ty][tx + 16 * j]")}; }` : ""}
    workgroupBarrier();
  }
  for (var i = 0; i < 4; i++) {
    let m = row0 + ty + 16 * i;
    for (var j = 0; j < 4; j++) {
      let n = col0 + tx + 16 * j;
      if (m < u.M && n < u.N) { ${epilogue("acc[i][j]")} }
    }
  }
  ${v.colSum ? colSumTail(tile, sumValue) : ""}
}`;
}

/**
 * The parts every tile configuration shares: the header (f16 helpers, uniforms, bindings, GELU),
 * the element reads and the tile element type with its conversions, the epilogue of one output
 * element (`m`, `n` and `cBase` in scope; C written), and the value written for a column sum `s`.
 */
export function gemmParts(v: GemmVariant) {
  checkGemmVariant(v);
  const names = gemmBindings(v);
  // Every binding read_write: WebGPU tracks usage per buffer, not per range, so a read-only
  // binding of a buffer whose other range is written in the same dispatch (the fused block's
  // workspace) is a usage conflict; writable bindings of one buffer at disjoint ranges are not.
  // (Y, LN(A), is stored as A is.)
  const half = v.half ? new Set<string>(v.half.includes("A") ? [...v.half, "Y"] : v.half) : null;
  const decl = names
    .map((name, i) => {
      const type = half?.has(name) ? "f16" : "f32";
      return `@group(0) @binding(${i}) var<storage, read_write> ${name} : array<${type}>;`;
    })
    .join("\n");
  // Reads, tile element type and the rounding steps: identity for the f32 GEMM.
  const read = (name: string, index: string) =>
    half?.has(name) ? `f32(${name}[${index}])` : `${name}[${index}]`;
  const store = (name: string, value: string) => (half?.has(name) ? `sitHalf(${value})` : value);
  const round = (x: string) => (half ? `${x} = f32(sitHalf(${x.trim()}));` : "");
  const epilogue = (acc: string) => `
        var c = ${acc};
        ${v.bias ? `c += ${half ? "f32(sitHalf(Bias[n]))" : "Bias[n]"};` : ""}${round("\n        c")}
        ${v.scaleRows ? "c *= Sc[m / u.rowsPer];" : ""}
        ${v.geluGrad ? `c *= sitGeluGrad(${read("H", "m * u.N + n")});${round(" c")}` : ""}
        ${v.residual ? `c += ${read("R", "m * u.N + n")};` : ""}
        C[cBase + m * u.N + n] = ${store("C", "c")};`;
  // The LayerNorm prologue: element `x` of A (f32, inside the edges) at row `mm` of the tile,
  // column `k` of A, index `idx` of A, normalized in place (and written to Y by the first column
  // of tiles).
  const lnApply = (x: string, mm: string, k: string, idx: string) =>
    v.lnA
      ? `${x} = (${x} - lnMu[${mm}]) * lnRstd[${mm}] * Gamma[${k}] + Beta[${k}];${
          v.lnOut ? ` if (wid.x == 0u) { Y[${idx}] = ${store("Y", x)}; }` : ""
        }`
      : "";
  return {
    header: `${half ? HALF_WGSL : ""}
struct U { M : i32, N : i32, K : i32, rowsPer : i32, kSplit : i32, eps : f32 };
${decl}
@group(0) @binding(${names.length}) var<uniform> u : U;
${PHI_WGSL}${v.lnA ? LN_DECL : ""}`,
    lnStats: v.lnA ? lnStats(read("A", "(row0 + r) * u.K + c")) : "",
    lnApply,
    read,
    tile: half ? "f16" : "f32",
    toTile: (x: string) => (half ? `sitHalf(${x})` : x),
    fromTile: (x: string) => (half ? `f32(${x})` : x),
    epilogue,
    sumValue: half ? (half.has("S") ? "sitHalf(s)" : "f32(sitHalf(s))") : "s",
  };
}

// The LayerNorm prologue's row statistics (μ, rstd of each of the tile's BM rows), computed by
// every workgroup before its K loop: 16 threads per row (consecutive threads on consecutive
// columns, coalesced), 16 rows at a time, each thread a Welford pass over its columns, the 16
// partial (count, mean, M2) merged pairwise (Chan et al.) in workgroup memory — as the block's
// LayerNorm kernel does (reductions.ts), biased variance. 256 threads per workgroup in both
// tiles; BM is the tile's constant. A row's statistics are recomputed by each column tile: K
// reads per row, against the K·N products of the tile's GEMM.
const LN_DECL = `
var<workgroup> lnN : array<f32, 256>;
var<workgroup> lnMean : array<f32, 256>;
var<workgroup> lnM2 : array<f32, 256>;
var<workgroup> lnMu : array<f32, BM>;
var<workgroup> lnRstd : array<f32, BM>;
${welfordMergeFn("sitLnMerge", "lnN", "lnMean", "lnM2")}`;

// The statistics pass (`tid`, `row0` in scope; `x` reads A at row row0 + r, column c). Barriers
// under uniform control flow only: the loop bounds are constants, the guarded parts have none.
function lnStats(x: string): string {
  return `for (var p = 0; p < BM / 16; p++) {
    let r = p * 16 + tid / 16;
    let lane = tid % 16;
    var cnt = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    if (row0 + r < u.M) {
      for (var c = lane; c < u.K; c += 16) {
        ${welfordAdd(x, "cnt", "mean", "m2")}
      }
    }
    lnN[tid] = cnt;
    lnMean[tid] = mean;
    lnM2[tid] = m2;
    workgroupBarrier();
    for (var s = 8; s > 0; s = s >> 1) {
      if (lane < s) { sitLnMerge(tid, tid + s); }
      workgroupBarrier();
    }
    // (Lane 0 reads only its own entries and every thread of the next round writes only its own:
    // no barrier between the rounds.)
    if (lane == 0) {
      lnMu[r] = lnMean[tid];
      lnRstd[r] = inverseSqrt(lnM2[tid] / f32(u.K) + u.eps);
    }
  }
  workgroupBarrier();`;
}

// Column sums of op(B): every workgroup in the first row of tiles has seen all of K for its
// columns; each thread summed tile row ty, and the 16 partial sums of a column are added here
// (wid.y is workgroup-uniform, so the barrier is allowed under the branch).
// (An f16 variant stages the partial sums in a workgroup array of f32 of its own.)
function colSumTail(tile: string, value: string): string {
  const scratch = tile === "f32" ? "As" : "CsumScratch";
  return `
  if (wid.y == 0u) {
    for (var j = 0; j < 4; j++) { ${scratch}[ty][tx + 16 * j] = csum[j]; }
    workgroupBarrier();
    if (ty == 0) {
      for (var j = 0; j < 4; j++) {
        let n = col0 + tx + 16 * j;
        var s = 0.0;
        for (var r = 0; r < BK; r++) { s += ${scratch}[r][tx + 16 * j]; }
        if (n < u.N) { S[i32(wid.z) * u.N + n] = ${value}; }
      }
    }
  }`;
}

/**
 * f32 → f16 with overflow to ±inf and NaN kept (WGSL leaves both of those conversions to the
 * implementation), else f16's own rounding. Declared by every mixed-precision variant.
 */
export const HALF_WGSL = `enable f16;
fn sitHalf(x : f32) -> f16 {
  let bits = bitcast<u32>(x);
  let sign = (bits >> 16u) & 0x8000u; // (patterns built at run time: constants must be finite)
  if ((bits & 0x7fffffffu) > 0x7f800000u) { return bitcast<vec2<f16>>(sign | 0x7e00u).x; }
  if (abs(x) >= 65520.0) { return bitcast<vec2<f16>>(sign | 0x7c00u).x; }
  return f16(x);
}`;
