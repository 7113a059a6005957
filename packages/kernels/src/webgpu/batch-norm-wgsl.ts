import { PHI_WGSL } from "./gelu";

// WGSL of BatchNorm1d in training mode fused with the activation after it (none, ReLU, exact
// GELU) over `X [M, C]`, statistics per column over the M rows: the forward (normalise, affine,
// activation, and the running statistics' update) and its backward, one dispatch each. A
// workgroup owns 64 columns; its 4 lanes of 64 threads stride over the rows (consecutive threads
// read consecutive columns) and add their partial sums in workgroup memory. The batch statistics
// are recomputed in the backward from X (two passes over M rows: cheaper than saving them).

/** The activation after the norm, as the shaders number it. */
export const BN_ACTIVATIONS = { none: 0, relu: 1, gelu: 2 } as const;
export type BnActivation = keyof typeof BN_ACTIVATIONS;

/** What one BatchNorm shader does. */
export interface BatchNormVariant {
  /** Learnable γ, β (PyTorch's `affine`). */
  affine: boolean;
  activation: BnActivation;
  /** Update running mean / variance / batches tracked (forward only). */
  track: boolean;
  /**
   * With `track`: blend the running statistics in the forward's own dispatch (10 storage
   * bindings, where the device allows them) instead of writing the batch's and blending them in a
   * second dispatch ({@link runningWgsl}; WebGPU's default limit is 8 storage buffers per stage).
   */
  oneDispatch?: boolean;
}

/** Storage bindings the one-dispatch forward with running statistics needs. */
export const BN_ONE_DISPATCH_BINDINGS = 10;

/** Columns per workgroup (the dispatch is ⌈C / 64⌉ workgroups). */
export const BN_COLUMNS = 64;

export function batchNormKey(v: BatchNormVariant, grad: boolean): string {
  const track = grad || !v.track ? 0 : v.oneDispatch ? 2 : 1;
  const bits = [v.affine ? 1 : 0, BN_ACTIVATIONS[v.activation], track];
  return `SitBatchNorm${grad ? "Grad" : ""}_${bits.join("")}`;
}

/** Storage bindings (reads, then writes) of a variant, in binding order; the uniforms follow. */
export function batchNormBindings(v: BatchNormVariant, grad: boolean): string[] {
  const affine = v.affine ? ["Gamma", "Beta"] : [];
  if (grad) return ["DY", "X", ...affine, "DX", ...(v.affine ? ["DGamma", "DBeta"] : [])];
  // Either the new running statistics are blended here from the old ones (oneDispatch), or the
  // batch's mean and biased variance go to the running outputs and {@link runningWgsl} blends them.
  if (v.track && v.oneDispatch)
    return ["X", ...affine, "RM", "RV", "NBT", "Y", "RMo", "RVo", "NBTo"];
  return ["X", ...affine, "Y", ...(v.track ? ["RMo", "RVo"] : [])];
}

const WRITTEN = new Set(["Y", "RMo", "RVo", "NBTo", "DX", "DGamma", "DBeta"]);
const access = (name: string) => (WRITTEN.has(name) ? "read_write" : "read");
const typeOf = (name: string) => (name === "NBT" || name === "NBTo" ? "i32" : "f32");

const ACT = ["y", "max(y, 0.0)", "sitGelu(y)"];
const ACT_GRAD = ["1.0", "select(0.0, 1.0, y > 0.0)", "sitGeluGrad(y)"];

function header(v: BatchNormVariant, grad: boolean): string {
  // Inputs read-only: a caller may pass one tensor twice (read-only bindings may alias; writable
  // ones may not), and the outputs are always new buffers.
  const names = batchNormBindings(v, grad);
  const decl = names
    .map(
      (n, k) => `@group(0) @binding(${k}) var<storage, ${access(n)}> ${n} : array<${typeOf(n)}>;`,
    )
    .join("\n");
  return `
// keep: 1 − momentum; momentum < 0: cumulative average (factor 1 / batches tracked).
struct U { M : i32, C : i32, eps : f32, momentum : f32, keep : f32, unbiased : f32 };
${decl}
@group(0) @binding(${names.length}) var<uniform> u : U;
${PHI_WGSL}
var<workgroup> red : array<f32, 256>;
// Σ over the 4 lanes of this thread's column (every thread gets it). Uniform control flow only.
fn laneSum(tid : i32, v : f32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  let c = tid % 64;
  let s = (red[c] + red[c + 64]) + (red[c + 128] + red[c + 192]);
  workgroupBarrier();
  return s;
}`;
}

/** Mean and biased variance of the column (two passes), α = γ·rstd and shift = β − μ·α. */
function stats(v: BatchNormVariant): string {
  return `
  let tid = i32(lid.x);
  let col = i32(wid.x) * 64 + tid % 64;
  let lane = tid / 64;
  let ok = col < u.C;
  var s = 0.0;
  if (ok) { for (var r = lane; r < u.M; r += 4) { s += X[r * u.C + col]; } }
  let mean = laneSum(tid, s) / f32(u.M);
  var q = 0.0;
  if (ok) {
    for (var r = lane; r < u.M; r += 4) { let d = X[r * u.C + col] - mean; q += d * d; }
  }
  let variance = laneSum(tid, q) / f32(u.M);
  let rstd = inverseSqrt(variance + u.eps);
  var gamma = 1.0;
  var beta = 0.0;
  ${v.affine ? "if (ok) { gamma = Gamma[col]; beta = Beta[col]; }" : ""}
  // PyTorch's CPU arithmetic (as @sit/core's BatchNorm1d): y = x·α + (β − μ·α).
  let alpha = rstd * gamma;
  let shift = beta - mean * alpha;`;
}

/** The running statistics' blend `r·(1 − f) + batch·f` of {@link runningWgsl}, from `mean`, `variance`. */
const BLEND = `
    var f = u.momentum;
    var keep = u.keep;
    if (f < 0.0) { f = 1.0 / f32(NBT[0] + 1); keep = 1.0 - f; }`;

/** Forward: `Y = act(X·α + shift)`; lane 0 updates the running statistics of its column. */
export function batchNormWgsl(v: BatchNormVariant): string {
  const track = !v.track
    ? ""
    : v.oneDispatch
      ? `if (ok && lane == 0) {${BLEND}
    RMo[col] = RM[col] * keep + mean * f;
    RVo[col] = RV[col] * keep + (variance * u.unbiased) * f;
    if (col == 0) { NBTo[0] = NBT[0] + 1; }
  }`
      : "if (ok && lane == 0) { RMo[col] = mean; RVo[col] = variance; }";
  return `${header(v, false)}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>) {
  ${stats(v)}
  if (ok) {
    for (var r = lane; r < u.M; r += 4) {
      let y = X[r * u.C + col] * alpha + shift;
      Y[r * u.C + col] = ${ACT[BN_ACTIVATIONS[v.activation]]};
    }
  }
  ${track}
}`;
}

/**
 * The running statistics' update, in place of the batch statistics that the forward wrote to
 * `RMo`, `RVo`: `r ← r·(1 − f) + batch·f` (the variance unbiased), f = momentum or, for a
 * cumulative average (momentum < 0), 1 / batches tracked after this one; `NBTo = NBT + 1`.
 */
export function runningWgsl(): string {
  return `
struct U { M : i32, C : i32, eps : f32, momentum : f32, keep : f32, unbiased : f32 };
@group(0) @binding(0) var<storage, read> RM : array<f32>;
@group(0) @binding(1) var<storage, read> RV : array<f32>;
@group(0) @binding(2) var<storage, read> NBT : array<i32>;
@group(0) @binding(3) var<storage, read_write> RMo : array<f32>;
@group(0) @binding(4) var<storage, read_write> RVo : array<f32>;
@group(0) @binding(5) var<storage, read_write> NBTo : array<i32>;
@group(0) @binding(6) var<uniform> u : U;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid : vec3<u32>) {
  let col = i32(gid.x);${BLEND}
  if (col < u.C) {
    RMo[col] = RM[col] * keep + RMo[col] * f;
    RVo[col] = RV[col] * keep + (RVo[col] * u.unbiased) * f;
  }
  if (col == 0) { NBTo[0] = NBT[0] + 1; }
}`;
}

/**
 * Backward: with ĝ = dY·act′(pre) (pre recomputed) and x̂ = (X − μ)·rstd,
 * `dX = γ·rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, `dγ = Σ ĝ·x̂`, `dβ = Σ ĝ`.
 */
export function batchNormGradWgsl(v: BatchNormVariant): string {
  const g = `DY[r * u.C + col] * ${ACT_GRAD[BN_ACTIVATIONS[v.activation]]}`;
  return `${header(v, true)}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>) {
  ${stats(v)}
  var sg = 0.0;
  var sgx = 0.0;
  if (ok) {
    for (var r = lane; r < u.M; r += 4) {
      let x = X[r * u.C + col];
      let y = x * alpha + shift;
      let gh = ${g};
      sg += gh;
      sgx += gh * (x - mean) * rstd;
    }
  }
  let sumG = laneSum(tid, sg);
  let sumGX = laneSum(tid, sgx);
  if (ok) {
    let mg = sumG / f32(u.M);
    let mgx = sumGX / f32(u.M);
    for (var r = lane; r < u.M; r += 4) {
      let x = X[r * u.C + col];
      let y = x * alpha + shift;
      let gh = ${g};
      DX[r * u.C + col] = alpha * (gh - mg - (x - mean) * rstd * mgx);
    }
    ${v.affine ? "if (lane == 0) { DGamma[col] = sumGX; DBeta[col] = sumG; }" : ""}
  }
}`;
}
