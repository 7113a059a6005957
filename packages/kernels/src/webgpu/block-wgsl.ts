import { ATTENTION_ROWS, attentionMain } from "./attention";
import { GROUP_INDEX_WGSL } from "./program";
import {
  layerNormGradRowCode,
  layerNormRowCode,
  rowThreads,
  welfordDecl,
  welfordRow,
} from "./reductions";

// WGSL of the fused transformer block's passes besides the GEMMs (gemm-wgsl.ts): LayerNorm
// forward, its input gradient with the residual's gradient added, its parameter gradients as
// partial column sums plus one finishing pass, and the attention passes of attention.ts behind
// explicit bindings. Every shader here is encoded directly (encode.ts), so it declares its own
// bindings (inputs read-only, outputs read-write, in the order the caller passes views) and a
// uniform struct of 32-bit scalars.

/**
 * Storage bindings `read` then `write`, all declared read_write: the block binds disjoint ranges
 * of one workspace buffer in the same dispatch, and WebGPU tracks usage per buffer, so mixing
 * read-only and writable bindings of it would be a usage conflict (see gemm-wgsl.ts).
 */
function bindings(read: string[], write: string[]): string {
  return [...read, ...write]
    .map((name, i) => `@group(0) @binding(${i}) var<storage, read_write> ${name} : array<f32>;`)
    .join("\n");
}

/** The flat workgroup index of a (possibly folded, see encode.ts `foldGroups`) dispatch. */
const ROW_OF = "let row = i32(wid.y * nwg.x + wid.x);";
const BUILTINS =
  "@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>";

/** Shared uniforms of the LayerNorm passes. */
const LN_UNIFORMS = "struct U { M : i32, D : i32, eps : f32 };";

/** Threads of the LayerNorm row passes for rows of `d` (one workgroup per row). */
export const lnThreads = rowThreads;

/** `Y = (X − μ)·rstd·γ + β` per row of `X [M, D]`; one workgroup per row. */
export function layerNormWgsl(wg: number): string {
  return `${LN_UNIFORMS}
${bindings(["X", "Gamma", "Beta"], ["Y"])}
@group(0) @binding(4) var<uniform> u : U;
${welfordDecl(wg)}
@compute @workgroup_size(${wg}, 1, 1)
fn main(${BUILTINS}) {
  ${ROW_OF}
  let tid = i32(lid.x);
  let d = u.D;
  let ok = row < u.M;
  let base = row * d;
  ${layerNormRowCode("X", "Gamma", "Beta", "u.eps", (y) => `Y[base + c] = ${y};`)}
}`;
}

/**
 * `DX = R + rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, ĝ = DY·γ, per row (LayerNorm's input gradient
 * plus the gradient `R` that reaches the same tensor through the residual path).
 */
export function layerNormGradWgsl(wg: number): string {
  return `${LN_UNIFORMS}
${bindings(["DY", "X", "Gamma", "R"], ["DX"])}
@group(0) @binding(5) var<uniform> u : U;
${welfordDecl(wg)}
@compute @workgroup_size(${wg}, 1, 1)
fn main(${BUILTINS}) {
  ${ROW_OF}
  let tid = i32(lid.x);
  let d = u.D;
  let ok = row < u.M;
  let base = row * d;
  ${layerNormGradRowCode("DY", "X", "Gamma", "u.eps", (dx) => `DX[base + c] = R[base + c] + ${dx};`)}
}`;
}

/** Rows per workgroup of {@link layerNormPartialsWgsl}, and its threads. */
export const PARTIAL_ROWS = 32;
const PARTIAL_THREADS = 64;

/** Columns per thread of {@link layerNormPartialsWgsl} for rows of `d`. */
export function partialCols(d: number): number {
  return Math.ceil(d / PARTIAL_THREADS);
}

/**
 * Partial sums over blocks of 32 rows: `P[blk, 0, c] = Σ DY·x̂` (γ's gradient) and
 * `P[blk, 1, c] = Σ DY` (β's), x̂ recomputed from X per row. `P [⌈M/32⌉, 2, D]`.
 */
export function layerNormPartialsWgsl(cpt: number): string {
  return `${LN_UNIFORMS}
${bindings(["DY", "X"], ["P"])}
@group(0) @binding(3) var<uniform> u : U;
${welfordDecl(PARTIAL_THREADS)}
const CPT = ${cpt};
const RB = ${PARTIAL_ROWS};
@compute @workgroup_size(${PARTIAL_THREADS}, 1, 1)
fn main(${BUILTINS}) {
  let blk = i32(wid.y * nwg.x + wid.x);
  let tid = i32(lid.x);
  let m = u.M;
  let d = u.D;
  let valid = blk < (m + RB - 1) / RB;
  var accG : array<f32, CPT>;
  var accB : array<f32, CPT>;
  for (var rr = 0; rr < RB; rr++) {
    let r = blk * RB + rr;
    let rowOk = valid && r < m;
    ${welfordRow("X", "r * d", "rowOk", "d", "u.eps")}
    if (rowOk) {
      for (var k = 0; k < CPT; k++) {
        let c = tid + k * WG;
        if (c < d) {
          let g = DY[r * d + c];
          accB[k] += g;
          accG[k] += g * (X[r * d + c] - mu) * rstd;
        }
      }
    }
  }
  if (valid) {
    for (var k = 0; k < CPT; k++) {
      let c = tid + k * WG;
      if (c < d) {
        P[(blk * 2) * d + c] = accG[k];
        P[(blk * 2 + 1) * d + c] = accB[k];
      }
    }
  }
}`;
}

/** `G[c] = Σ_blk P[blk, 0, c]`, `Bt[c] = Σ_blk P[blk, 1, c]`: 64 columns × 4 lanes per workgroup. */
export function finishPartialsWgsl(): string {
  return `struct U { R : i32, D : i32 };
${bindings(["P"], ["G", "Bt"])}
@group(0) @binding(3) var<uniform> u : U;
var<workgroup> lanes : array<vec2<f32>, 256>;
@compute @workgroup_size(256, 1, 1)
fn main(${BUILTINS}) {
  let tid = i32(lid.x);
  let c = i32(wid.x) * 64 + tid % 64;
  let lane = tid / 64;
  let d = u.D;
  var s = vec2<f32>(0.0, 0.0);
  if (c < d) {
    for (var b = lane; b < u.R; b += 4) { s += vec2<f32>(P[(b * 2) * d + c], P[(b * 2 + 1) * d + c]); }
  }
  lanes[tid] = s;
  workgroupBarrier();
  if (lane == 0 && c < d) {
    let t = (lanes[tid] + lanes[tid + 64]) + (lanes[tid + 128] + lanes[tid + 192]);
    G[c] = t.x;
    Bt[c] = t.y;
  }
}`;
}

/**
 * One attention pass of attention.ts (`body`: forwardBody, statsBody, dqBody or dkdvBody) with
 * explicit bindings `read` then `result`, and uniforms `[B, N, 3D, heads, scale]` laid out as
 * tfjs's generator lays out `qKVShape : vec3<i32>, numHeads : i32, scale : f32`.
 */
export function attentionWgsl(hd: number, read: string[], body: string): string {
  return `struct Uniforms { qKVShape : vec3<i32>, numHeads : i32, scale : f32 };
${bindings(read, ["result"])}
@group(0) @binding(${read.length + 1}) var<uniform> uniforms : Uniforms;
var<private> localId : vec3<u32>;
var<private> workgroupId : vec3<u32>;
var<private> numWorkgroups : vec3<u32>;
${GROUP_INDEX_WGSL}
${attentionMain(hd, body, "attentionPass")}
@compute @workgroup_size(${ATTENTION_ROWS}, 1, 1)
fn main(${BUILTINS}) {
  localId = lid;
  workgroupId = wid;
  numWorkgroups = nwg;
  attentionPass(0);
}`;
}
