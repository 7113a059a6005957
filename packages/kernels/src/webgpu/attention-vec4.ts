import { ATTENTION_ROWS, PLACE_WGSL } from "./attention-place";

// The fused attention passes of attention.ts for head sizes that are a multiple of 4 and at most
// 64 (ViT-Tiny and ViT-S have 64), written so that a GPU keeps each thread's rows in registers.
//
// Why a second set: the general passes hold a row in `array<f32, HD>` and index it in loops. On
// an NVIDIA H200 (Dawn/Vulkan, 2026-12-04) those arrays lived in local memory, and the three
// attention passes took half of the SiT step's GPU time (ViT-S/16: 318 of 566 ms, at ≈ 2 TFLOP/s).
// Here the generator unrolls every loop over the head dimension, so each row is HD/4 named vec4
// variables; shared tiles are vec4 (a quarter of the shared-memory reads), and keys (or query
// rows) are taken four at a time, so the online softmax rescales once per four keys.
//
// Same interface as the general passes (attention-general.ts): the (batch, head, 32-row tile) of each workgroup, the
// packed `QKV [B, N, 3D]`, `DY`/`O [B, N, D]`, statistics `ST [B, H, N, 2]` (logsumexp, δ) and
// the bindings' names; only the workgroup size of dK/dV differs (64: see dkdvVec4).

/** Key (or query) rows per shared tile; a multiple of 4. */
const KT = 32;

/** Whether the vec4 passes take this head size. */
export function vec4Attention(hd: number): boolean {
  return hd % 4 === 0 && hd <= 64 && hd > 0;
}

const each = (hd: number, line: (c: number) => string) =>
  Array.from({ length: hd / 4 }, (_, c) => line(c)).join("\n      ");

const declare = (hd: number, ...names: string[]) =>
  names.map((v) => each(hd, (c) => `var ${v}${c} = vec4<f32>(0.0);`)).join("\n      ");

const load4 = (buf: string, at: string) =>
  `vec4<f32>(${buf}[${at}], ${buf}[${at} + 1], ${buf}[${at} + 2], ${buf}[${at} + 3])`;

const store4 = (buf: string, at: string, v: string) =>
  `{ let w = ${v}; ${buf}[${at}] = w.x; ${buf}[${at} + 1] = w.y; ${buf}[${at} + 2] = w.z; ${buf}[${at} + 3] = w.w; }`;

/** The four dot products of the row `reg` with tile rows jj … jj+3: a vec4 of them. */
function dots4(hd: number, reg: string, tile: string): string {
  const one = (r: number) =>
    Array.from(
      { length: hd / 4 },
      (_, c) => `dot(${reg}${c}, ${tile}[(jj + ${r}) * HD4 + ${c}])`,
    ).join(" + ");
  return `vec4<f32>(${[0, 1, 2, 3].map(one).join(",\n        ")})`;
}

/** `acc += w.x·tile[jj] + … + w.w·tile[jj+3]` for every vec4 of the row (`scale` first if given). */
function axpy4(hd: number, acc: string, w: string, tile: string, scale?: string): string {
  return each(hd, (c) => {
    const terms = [0, 1, 2, 3].map((r) => `${w}.${"xyzw"[r]} * ${tile}[(jj + ${r}) * HD4 + ${c}]`);
    return `${acc}${c} = ${scale ? `${acc}${c} * ${scale}` : `${acc}${c}`} + (${terms.join(" + ")});`;
  });
}

/** Which of tile rows jj … jj+3 exist (fewer than four in the last tile). */
const VALID4 = "(vec4<i32>(jj) + vec4<i32>(0, 1, 2, 3)) < vec4<i32>(cnt)";

/**
 * WGSL preamble of the vec4 passes: tiles, the workgroup's place, and a cooperative tile loader.
 * `threads` threads per workgroup; rows beyond N are loaded as zeros, so that a masked weight of
 * 0 times them stays 0.
 */
export function vec4Preamble(hd: number, threads: number): string {
  return `
  const HD = ${hd};
  const HD4 = ${hd / 4};
  const ROWS = ${ATTENTION_ROWS};
  const KT = ${KT};
  const THREADS = ${threads};
  var<workgroup> tileA : array<vec4<f32>, ${KT * (hd / 4)}>;
  var<workgroup> tileB : array<vec4<f32>, ${KT * (hd / 4)}>;
  var<workgroup> tileS : array<vec2<f32>, ${KT}>;
  ${PLACE_WGSL}
  // Rows t·KT … of a [B, N, stride] operand at column \`col\` (plus the head's offset) → tile.
  fn rowOf(P : Place, j : i32, stride : i32, col : i32) -> i32 {
    return (P.b * uniforms.qKVShape[1] + j) * stride + col + P.head * HD;
  }`;
}

/** Load KT rows of one or two operands (`a`, `b`: (buffer, stride, column) WGSL) into tileA/B. */
function loadTiles(a: [string, string, string], b: [string, string, string] | null): string {
  const get = ([buf, stride, col]: [string, string, string]) =>
    load4(buf, `rowOf(P, j, ${stride}, ${col}) + (e % HD4) * 4`);
  return `
      for (var e = tid; e < KT * HD4; e += THREADS) {
        let j = t * KT + e / HD4;
        let ok = P.valid && j < n;
        var va = vec4<f32>(0.0);
        ${b ? "var vb = vec4<f32>(0.0);" : ""}
        if (ok) {
          va = ${get(a)};
          ${b ? `vb = ${get(b)};` : ""}
        }
        tileA[e] = va;
        ${b ? "tileB[e] = vb;" : ""}
      }`;
}

const K_COLS: [string, string, string] = ["QKV", "d3", "d"];
const V_COLS: [string, string, string] = ["QKV", "d3", "2 * d"];
const Q_COLS: [string, string, string] = ["QKV", "d3", "0"];
const DO_COLS: [string, string, string] = ["DY", "d", "0"];

/**
 * The online softmax of the thread's query row `q` over all keys, four keys a step: leaves the
 * running max `mx` and sum `l` (so logsumexp = mx + log l); with `accumulate`, also
 * `acc` = Σ_j exp(s_j − mx)·V_j, rescaled as the max grows.
 */
function onlineSoftmax(hd: number, accumulate: boolean): string {
  return `var mx = -3.0e38;
      var l = 0.0;
      for (var t = 0; t < tiles; t++) {
        ${loadTiles(K_COLS, accumulate ? V_COLS : null)}
        workgroupBarrier();
        let cnt = min(KT, n - t * KT);
        if (P.rowOk) {
          for (var jj = 0; jj < cnt; jj += 4) {
            let s = select(vec4<f32>(-3.0e38), ${dots4(hd, "q", "tileA")}, ${VALID4});
            let m2 = max(mx, max(max(s.x, s.y), max(s.z, s.w)));
            let corr = exp(mx - m2);
            let p = exp(s - vec4<f32>(m2));
            l = l * corr + ((p.x + p.y) + (p.z + p.w));
            ${accumulate ? axpy4(hd, "acc", "p", "tileB", "corr") : ""}
            mx = m2;
          }
        }
        workgroupBarrier();
      }`;
}

/** Forward: O = softmax(scale·QKᵀ)·V, online softmax over chunks of four keys. */
export function forwardVec4(hd: number): string {
  return `
      ${declare(hd, "q", "acc")}
      if (P.rowOk) {
        let qo = base + P.row * d3;
        ${each(hd, (c) => `q${c} = ${load4("QKV", `qo + ${4 * c}`)} * scale;`)}
      }
      ${onlineSoftmax(hd, true)}
      if (P.rowOk) {
        let inv = 1.0 / l;
        let ob = (P.b * n + P.row) * d + P.head * HD;
        ${each(hd, (c) => store4("result", `ob + ${4 * c}`, `acc${c} * inv`))}
      }`;
}

/** Declare and load the thread's query row (scaled) and its dO row, and δ = Σ dO·O if `withO`. */
function queryRows(hd: number, withO: boolean): string {
  return `
      ${declare(hd, "q", "g")}
      var delta = 0.0;
      if (P.rowOk) {
        let qo = base + P.row * d3;
        let ob = (P.b * n + P.row) * d + P.head * HD;
        ${each(hd, (c) => `q${c} = ${load4("QKV", `qo + ${4 * c}`)} * scale;`)}
        ${each(hd, (c) => `g${c} = ${load4("DY", `ob + ${4 * c}`)};`)}
        ${withO ? each(hd, (c) => `delta += dot(g${c}, ${load4("O", `ob + ${4 * c}`)});`) : ""}
      }
      let sb = ((P.b * uniforms.numHeads + P.head) * n + P.row) * 2;`;
}

/** Each query row's logsumexp over the keys into `lse` (its row of `out` gets lse and δ). */
function statsLoop(hd: number, out: string): string {
  return `
      ${onlineSoftmax(hd, false)}
      let lse = mx + log(l);
      if (P.rowOk) {
        ${out}[sb] = lse;
        ${out}[sb + 1] = delta;
      }`;
}

/** dQ = scale·Σ_j dS_ij·K_j, dS = P ⊙ (dO·Vᵀ − δ), given `lse` and `delta`. */
function dqLoop(hd: number): string {
  return `
      ${declare(hd, "dq")}
      for (var t = 0; t < tiles; t++) {
        ${loadTiles(K_COLS, V_COLS)}
        workgroupBarrier();
        let cnt = min(KT, n - t * KT);
        if (P.rowOk) {
          for (var jj = 0; jj < cnt; jj += 4) {
            let s = ${dots4(hd, "q", "tileA")};
            let dp = ${dots4(hd, "g", "tileB")};
            let ds = select(vec4<f32>(0.0), exp(s - vec4<f32>(lse)) * (dp - vec4<f32>(delta)), ${VALID4});
            ${axpy4(hd, "dq", "ds", "tileA")}
          }
        }
        workgroupBarrier();
      }
      if (P.rowOk) {
        let qo = base + P.row * d3;
        ${each(hd, (c) => store4("result", `qo + ${4 * c}`, `dq${c} * scale`))}
      }`;
}

/** Backward 1 alone: logsumexp and δ per query row → `result [B, H, N, 2]`. */
export function statsVec4(hd: number): string {
  return `${queryRows(hd, true)}
      ${statsLoop(hd, "result")}`;
}

/** Backward 2 alone: dQ from the statistics in `ST`. */
export function dqVec4(hd: number): string {
  return `${queryRows(hd, false)}
      var lse = 0.0;
      if (P.rowOk) {
        lse = ST[sb];
        delta = ST[sb + 1];
      }
      ${dqLoop(hd)}`;
}

/**
 * Backward 1 and 2 in one pass (the fused block): the statistics go to `ST` (bound read-write;
 * dK/dV's pass reads them) and stay in registers for dQ.
 */
export function statsDqVec4(hd: number): string {
  return `${queryRows(hd, true)}
      ${statsLoop(hd, "ST")}
      ${dqLoop(hd)}`;
}

/** Threads per workgroup of dkdvVec4. */
export const DKDV_VEC4_THREADS = 2 * ATTENTION_ROWS;

/**
 * Backward 3: per key row j, dV_j = Σ_i P_ij·dO_i and dK_j = scale·Σ_i dS_ij·Q_i over tiles of
 * query rows. Two threads per key row: the first warp's accumulate dV (needing k), the second's
 * dK (needing k and v). One thread holding k, v, dK and dV would need 256 floats of registers and
 * spill; split, each holds at most 192 (`acc` is dV or dK), at the cost of computing s twice.
 */
export function dkdvVec4(hd: number): string {
  return `
      let role = tid / ROWS;
      ${declare(hd, "k", "v", "acc")}
      if (P.rowOk) {
        let ko = base + P.row * d3;
        ${each(hd, (c) => `k${c} = ${load4("QKV", `ko + d + ${4 * c}`)} * scale;`)}
        if (role == 1) {
          ${each(hd, (c) => `v${c} = ${load4("QKV", `ko + 2 * d + ${4 * c}`)};`)}
        }
      }
      let statsBase = (P.b * uniforms.numHeads + P.head) * n;
      for (var t = 0; t < tiles; t++) {
        ${loadTiles(Q_COLS, DO_COLS)}
        for (var e = tid; e < KT; e += THREADS) {
          let i = t * KT + e;
          var st = vec2<f32>(0.0);
          if (P.valid && i < n) { st = vec2<f32>(ST[(statsBase + i) * 2], ST[(statsBase + i) * 2 + 1]); }
          tileS[e] = st;
        }
        workgroupBarrier();
        let cnt = min(KT, n - t * KT);
        if (P.rowOk) {
          for (var jj = 0; jj < cnt; jj += 4) {
            let s = ${dots4(hd, "k", "tileA")};
            let lse = vec4<f32>(tileS[jj].x, tileS[jj + 1].x, tileS[jj + 2].x, tileS[jj + 3].x);
            let p = select(vec4<f32>(0.0), exp(s - lse), ${VALID4});
            if (role == 0) {
              ${axpy4(hd, "acc", "p", "tileB")}
            } else {
              let dp = ${dots4(hd, "v", "tileB")};
              let dl = vec4<f32>(tileS[jj].y, tileS[jj + 1].y, tileS[jj + 2].y, tileS[jj + 3].y);
              let ds = p * (dp - dl);
              ${axpy4(hd, "acc", "ds", "tileA")}
            }
          }
        }
        workgroupBarrier();
      }
      if (P.rowOk) {
        let ob = base + P.row * d3;
        if (role == 0) {
          ${each(hd, (c) => store4("result", `ob + 2 * d + ${4 * c}`, `acc${c}`))}
        } else {
          ${each(hd, (c) => store4("result", `ob + d + ${4 * c}`, `acc${c} * scale`))}
        }
      }`;
}
