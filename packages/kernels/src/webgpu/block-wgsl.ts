import { type AttentionPass, attentionMain } from "./attention";
import { GROUP_INDEX_WGSL } from "./program";
import { layerNormGradRowCode, layerNormRowCode, welfordDecl } from "./reductions";

// WGSL of the fused transformer block's passes besides the GEMMs (gemm-wgsl.ts; the LayerNorms of
// the forward are GEMM prologues there): LayerNorm's input gradient with the residual's gradient
// added and its parameter gradients' partial column sums in one pass (finished by strided-sums.ts),
// and the attention passes of attention.ts behind explicit bindings. Every shader here is encoded directly (encode.ts), so it declares its own
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

const BUILTINS =
  "@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>";

/** Shared uniforms of the LayerNorm passes. */
const LN_UNIFORMS = "struct U { M : i32, D : i32, eps : f32 };";

/**
 * LayerNorm's forward `Y = (X − μ)·rstd·γ + β` over the rows of `X [M, D]`, one workgroup of `wg`
 * threads per row (the LayerNorm kernel; the fused block's LayerNorms are GEMM prologues).
 */
export function layerNormWgsl(wg: number): string {
  return `${LN_UNIFORMS}
${bindings(["X", "Gamma", "Beta"], ["Y"])}
@group(0) @binding(4) var<uniform> u : U;
${welfordDecl(wg)}
@compute @workgroup_size(${wg}, 1, 1)
fn main(${BUILTINS}) {
  let row = i32(wid.y * nwg.x + wid.x);
  let tid = i32(lid.x);
  let d = u.D;
  let ok = row < u.M;
  let base = row * d;
  ${layerNormRowCode("X", "Gamma", "Beta", "u.eps", (y) => `Y[base + c] = ${y};`)}
}`;
}

/** Rows per workgroup of {@link layerNormGradWgsl} (one partial column sum per block of rows). */
export const PARTIAL_ROWS = 32;

/**
 * LayerNorm's backward over blocks of {@link PARTIAL_ROWS} rows of `X [M, D]`, one workgroup per
 * block, its rows one after the other: `DX = R + rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, ĝ = DY·γ
 * (the input gradient plus the gradient `R` that reaches the same tensor through the residual
 * path), and the block's partial parameter gradients `P[blk, 0, c] = Σ DY·x̂` (γ's) and
 * `P[blk, 1, c] = Σ DY` (β's), `P [⌈M/32⌉, 2, D]`, from the same x̂ (one pass over DY and X
 * instead of a second dispatch that recomputed the row statistics). Without `residual` there is
 * no `R` (a LayerNorm outside a residual block: the ViT's final norm).
 */
export function layerNormGradWgsl(wg: number, d: number, residual = true): string {
  const cpt = Math.ceil(d / wg);
  const reads = residual ? ["DY", "X", "Gamma", "R"] : ["DY", "X", "Gamma"];
  const accumulate = (dx: string) => `DX[base + c] = ${residual ? "R[base + c] + " : ""}${dx};
        let k = (c - tid) / WG;
        accG[k] += DY[base + c] * xh;
        accB[k] += DY[base + c];`;
  return `${LN_UNIFORMS}
${bindings(reads, ["DX", "P"])}
@group(0) @binding(${reads.length + 2}) var<uniform> u : U;
${welfordDecl(wg)}
const CPT = ${cpt};
const RB = ${PARTIAL_ROWS};
@compute @workgroup_size(${wg}, 1, 1)
fn main(${BUILTINS}) {
  let blk = i32(wid.y * nwg.x + wid.x);
  let tid = i32(lid.x);
  let d = u.D;
  let valid = blk < (u.M + RB - 1) / RB;
  var accG : array<f32, CPT>;
  var accB : array<f32, CPT>;
  for (var rr = 0; rr < RB; rr++) {
    let row = blk * RB + rr;
    let ok = valid && row < u.M;
    let base = row * d;
    ${layerNormGradRowCode("DY", "X", "Gamma", "u.eps", accumulate)}
    // The row's sums in wN[0] / wMean[0] are read above: the next row may overwrite them only now.
    workgroupBarrier();
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

/**
 * One attention pass of attention.ts (`pass`: attentionPass(kind, hd), its workgroup size too) with
 * explicit bindings `read` then `result`, and uniforms `[B, N, 3D, heads, scale]` laid out as
 * tfjs's generator lays out `qKVShape : vec3<i32>, numHeads : i32, scale : f32`.
 */
export function attentionWgsl(hd: number, read: string[], pass: AttentionPass): string {
  return `struct Uniforms { qKVShape : vec3<i32>, numHeads : i32, scale : f32 };
${bindings(read, ["result"])}
@group(0) @binding(${read.length + 1}) var<uniform> uniforms : Uniforms;
var<private> localId : vec3<u32>;
var<private> workgroupId : vec3<u32>;
var<private> numWorkgroups : vec3<u32>;
${GROUP_INDEX_WGSL}
${attentionMain(hd, pass, "attentionPass")}
@compute @workgroup_size(${pass.threads}, 1, 1)
fn main(${BUILTINS}) {
  localId = lid;
  workgroupId = wid;
  numWorkgroups = nwg;
  attentionPass(0);
}`;
}
