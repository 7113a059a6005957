import { type GemmVariant, TILES, gemmParts } from "./gemm-wgsl";

// The large-tile configuration of the GEMM family (gemm-wgsl.ts has the variants and the 64 tile):
// 128 × 128 outputs per workgroup of 256 threads, 8 × 8 per thread, K in steps of 8. Why: with 4 × 4
// outputs a thread reads 8 shared-memory words per 16 FMAs, which bounds the 64 tile by
// shared-memory bandwidth on NVIDIA; with 8 × 8 held as vec4s it reads 4 vec4 (16 words) per 64
// FMAs. A thread's 8 rows are two runs of 4 consecutive rows 64 apart (`4·ty + i`, `64 + 4·ty + i`),
// its 8 columns likewise (`4·tx + j`, `64 + 4·tx + j`): each run is one vec4 of the shared tile, and
// the 16 threads of a row of the workgroup read 16 consecutive vec4 (no bank conflict), while the
// threads sharing ty read the same A vec4 (a broadcast).
//
// Shared tiles are `BK` rows of `BM / 4 + 1` vec4 (one vec4 of padding per row): global loads along
// the stored contiguous axis put 8 consecutive K of 4 rows into one warp's stores when A is [M, K]
// (or B is [N, K]); the padding spreads those 32 words over 32 banks.

/** vec4 per row of a shared tile: 32 of data and one of padding. */
const ROW4 = TILES[128].BM / 4 + 1;

/** WGSL of `v` on the 128 × 128 tile (same bindings, uniforms and semantics as {@link gemmWgsl}). */
export function gemmWgsl128(v: GemmVariant): string {
  const { BM, BN, BK } = TILES[128];
  const { header, read, tile, toTile, fromTile, epilogue, sumValue, lnStats, lnApply } =
    gemmParts(v);
  const f4 = (x: string) => (v.half ? `vec4<f32>(${x})` : x);
  // Element e of the 1024 loads of a tile (4 per thread), consecutive threads on consecutive
  // addresses of the stored matrix, for each layout.
  const loadA = v.transA
    ? "let mm = e % BM; let kk = e / BM; let idx = (kn + kk) * u.M + row0 + mm;"
    : "let kk = e % BK; let mm = e / BK; let idx = (row0 + mm) * u.K + kn + kk;";
  const loadB = v.transB
    ? "let kk = e % BK; let nn = e / BK; let idx = (col0 + nn) * u.K + kn + kk;"
    : "let nn = e % BN; let kk = e / BN; let idx = (kn + kk) * u.N + col0 + nn;";
  // acc[2·i + h]: row i of the thread's 8 (i < 4: 4·ty + i; else 64 + 4·ty + i − 4), columns
  // 4·tx + 64·h + (0..3). Written out so that every index is a constant (registers, not memory).
  const fmas: string[] = [];
  for (let i = 0; i < 8; i++) {
    const a = `vec4<f32>(a${i >> 2}.${"xyzw"[i & 3]})`;
    for (let h = 0; h < 2; h++)
      fmas.push(`acc[${2 * i + h}] = fma(${a}, b${h}, acc[${2 * i + h}]);`);
  }
  // The 4 + 4 loads of K step `kn` into registers pa0..3, pb0..3 (fetch), and their stores into
  // the shared tiles (stash, which recomputes the tile position from e and leaves idx unused);
  // written out per load so that the registers have constant names.
  const per = (BM * BK) / 256;
  const fetchA = (l: number) => `{
    let e = tid + ${l * 256};
    ${loadA}
    pa${l} = 0.0;
    if (row0 + mm < u.M && kn + kk < kEnd) {
      pa${l} = ${read("A", "idx")};
    }
  }`;
  const fetchB = (l: number) => `{
    let e = tid + ${l * 256};
    ${loadB}
    pb${l} = 0.0;
    if (col0 + nn < u.N && kn + kk < kEnd) {
      pb${l} = ${read("B", "idx")};
    }
  }`;
  // The GELU and LayerNorm prologues and the row factors apply at the stash (kn is then the
  // stashed step's k0), not at the fetch: there they would wait for the load at once and undo the
  // pipelining. (GELU of a zero-filled element is 0; LayerNorm's is not, so it is guarded; a
  // factor past K is not read.)
  const stashA = (l: number) => {
    const a = v.geluA ? `sitGelu(pa${l})` : `pa${l}`;
    const ln = v.lnA
      ? ` if (row0 + mm < u.M && kn + kk < kEnd) { ${lnApply(`pa${l}`, "mm", "kn + kk", "idx")} }`
      : "";
    return `{ let e = tid + ${l * 256}; ${loadA}${ln} As[kk * ROW4 + mm / 4][mm % 4] = ${toTile(a)}; }`;
  };
  const stashB = (l: number) => {
    const scale = v.scaleB ? ` if (kn + kk < kEnd) { pb${l} *= Sc[(kn + kk) / u.rowsPer]; }` : "";
    return `{ let e = tid + ${l * 256}; ${loadB}${scale} Bs[kk * ROW4 + nn / 4][nn % 4] = ${toTile(`pb${l}`)}; }`;
  };
  const ls = [...Array(per).keys()];
  const fetch = [...ls.map(fetchA), ...ls.map(fetchB)].join("\n  ");
  const stash = [...ls.map(stashA), ...ls.map(stashB)].join("\n    ");
  const regs = ls.map((l) => `var pa${l} : f32;\n  var pb${l} : f32;`).join("\n  ");
  const stores: string[] = [];
  for (let i = 0; i < 8; i++)
    for (let h = 0; h < 2; h++)
      stores.push(
        `sitOut4(row0 + ${i < 4 ? i : 60 + i} + 4 * ty, col0 + ${64 * h} + 4 * tx, cBase, acc[${2 * i + h}]);`,
      );
  return /* wgsl */ `${header}
const BM = ${BM};
const BN = ${BN};
const BK = ${BK};
const ROW4 = ${ROW4};
var<workgroup> As : array<vec4<${tile}>, ${BK * ROW4}>;
var<workgroup> Bs : array<vec4<${tile}>, ${BK * ROW4}>;${v.colSum ? "\nvar<workgroup> CsumScratch : array<f32, 256>;" : ""}

// The epilogue of output (m, n), skipped past the edges.
fn sitOut(m : i32, n : i32, cBase : i32, acc : f32) {
  if (m < u.M && n < u.N) { ${epilogue("acc")}
  }
}

fn sitOut4(m : i32, n : i32, cBase : i32, v : vec4<f32>) {
  sitOut(m, n, cBase, v.x);
  sitOut(m, n + 1, cBase, v.y);
  sitOut(m, n + 2, cBase, v.z);
  sitOut(m, n + 3, cBase, v.w);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(local_invocation_index) lidx : u32) {
  let tid = i32(lidx);
  let tx = tid % 16;
  let ty = tid / 16;
  let row0 = i32(wid.y) * BM;
  let col0 = i32(wid.x) * BN;
  var acc : array<vec4<f32>, 16>;
  var csum = 0.0;
  ${regs}
  // Split K (gemm-split.ts), as in the 64 tile.
  let kBegin = i32(wid.z) * u.kSplit;
  let kEnd = min(u.K, kBegin + u.kSplit);
  let cBase = i32(wid.z) * u.M * u.N;
  ${lnStats}
  // Software pipelining: the global loads of the next K step are issued into registers before
  // the FMAs of the current one, so their latency hides behind arithmetic (only one or two
  // workgroups of this size fit a multiprocessor: few warps to switch to while loads wait).
  var kn = kBegin;
  ${fetch}
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
    ${stash}
    workgroupBarrier();
    kn = k0 + BK;
    ${fetch}
    for (var kk = 0; kk < BK; kk++) {
      let a0 = ${f4("As[kk * ROW4 + ty]")};
      let a1 = ${f4("As[kk * ROW4 + ty + 16]")};
      let b0 = ${f4("Bs[kk * ROW4 + tx]")};
      let b1 = ${f4("Bs[kk * ROW4 + tx + 16]")};
      ${fmas.join("\n      ")}
    }${
      v.colSum
        ? `
    // Column tid % 128 of op(B), tile rows tid / 128, + 2, + 4, + 6.
    for (var r = tid / 128; r < BK; r += 2) {
      csum += ${fromTile("Bs[r * ROW4 + (tid % 128) / 4][tid % 4]")};
    }`
        : ""
    }
    workgroupBarrier();
  }
  ${stores.join("\n  ")}${v.colSum ? colSumTail128(sumValue) : ""}
}`;
}

// Column sums of op(B): the first row of tiles has seen all of K for its columns; the two partial
// sums of each column (tile rows of either parity) are added here (wid.y is workgroup-uniform, so
// the barrier is allowed under the branch).
function colSumTail128(value: string): string {
  return `
  if (wid.y == 0u) {
    CsumScratch[tid] = csum;
    workgroupBarrier();
    if (tid < 128) {
      let n = col0 + tid;
      let s = CsumScratch[tid] + CsumScratch[tid + 128];
      if (n < u.N) { S[i32(wid.z) * u.N + n] = ${value}; }
    }
  }`;
}
