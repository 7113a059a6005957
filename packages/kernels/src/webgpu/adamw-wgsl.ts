// WGSL of the flat AdamW (adamw.ts), plain or with a device-resident loss scale (`scaled`).
// Scratch `norms` = [sum of squares (T) | clip factor (T)], and when scaled also
// [non-finite flag (T) | 1/scale, found inf, bias-correction row, 0]; `tbl` (the plan's meta) =
// [offsets (T + 1) | group of each tensor (T)]. The scaled variants follow PyTorch's
// GradScaler with a fused optimiser: the gradients are unscaled (× 1/scale) before the clip norms
// are taken, any inf/NaN in the scaled gradients skips the whole update (decided on the device),
// and the scale state is updated as `_amp_update_scale_` does.

export const THREADS = 256;

// Bit test, not `x != x`: WGSL lets a compiler assume that no value is inf or NaN.
const NON_FINITE = /* wgsl */ `
fn nonFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }`;

/** Pass 1: per-tensor sums of squares (one workgroup per tensor) and SiT's per-tensor factor. */
export function sumsqWgsl(scaled: boolean): string {
  return /* wgsl */ `
struct U { numTensors: u32, clip: f32, pad0: u32, pad1: u32 };
@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> tbl: array<u32>;
@group(0) @binding(2) var<storage, read_write> norms: array<f32>;
${scaled ? "@group(0) @binding(3) var<storage, read> state: array<f32>;" : ""}
@group(0) @binding(${scaled ? 4 : 3}) var<uniform> u: U;
var<workgroup> partial: array<f32, ${THREADS}>;
${scaled ? `var<workgroup> bad: atomic<u32>;\n${NON_FINITE}` : ""}
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  let start = tbl[t];
  let end = tbl[t + 1u];
  ${scaled ? "let inv = 1.0 / state[0];\n  var seen = 0u;" : ""}
  var acc = 0.0;
  for (var i = start + lid; i < end; i = i + ${THREADS}u) {
    ${scaled ? "let raw = grad[i];\n    if (nonFinite(raw)) { seen = 1u; }\n    let g = raw * inv;" : "let g = grad[i];"}
    acc = acc + g * g;
  }
  partial[lid] = acc;
  ${scaled ? "if (seen != 0u) { atomicOr(&bad, 1u); }" : ""}
  workgroupBarrier();
  for (var s = ${THREADS / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { partial[lid] = partial[lid] + partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let ss = partial[0];
    norms[t] = ss;
    var f = 1.0;
    if (u.clip > 0.0) { f = min(1.0, u.clip / (sqrt(ss) + 1e-6)); }
    norms[u.numTensors + t] = f;
    ${scaled ? "norms[2u * u.numTensors + t] = f32(atomicLoad(&bad));" : ""}
  }
}`;
}

const GLOBAL_CLIP = /* wgsl */ `
  var acc = 0.0;
  for (var t = lid; t < T; t = t + ${THREADS}u) {
    let f = norms[T + t];
    // A tensor zeroed by its own clipping (infinite norm) adds nothing (not ∞·0).
    if (f != 0.0) { acc = acc + norms[t] * f * f; }
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = ${THREADS / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { partial[lid] = partial[lid] + partial[lid + s]; }
    workgroupBarrier();
  }
  let coef = min(1.0, u.maxNorm / (sqrt(partial[0]) + 1e-6));
  for (var t = lid; t < T; t = t + ${THREADS}u) { norms[T + t] = norms[T + t] * coef; }`;

/** Pass 2 (one workgroup): the global-norm factor (plain: only with clipGlobalNorm). */
export const GLOBAL_WGSL = /* wgsl */ `
struct U { numTensors: u32, maxNorm: f32, pad0: u32, pad1: u32 };
@group(0) @binding(0) var<storage, read_write> norms: array<f32>;
@group(0) @binding(1) var<uniform> u: U;
var<workgroup> partial: array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_index) lid: u32) {
  let T = u.numTensors;${GLOBAL_CLIP}
}`;

/**
 * Pass 2, scaled (always runs): found-inf over the tensors' flags, the global-norm factor when
 * `maxNorm` > 0, and the scale update (`state` = [scale, growth tracker, found inf, skipped
 * steps]; `scale` = [scale]). It also records, for pass 3, the 1/scale this step used, whether
 * it is skipped and which row of the bias-correction table holds its effective step.
 */
export const GLOBAL_SCALED_WGSL = /* wgsl */ `
struct U {
  numTensors: u32, maxNorm: f32, growthFactor: f32, backoffFactor: f32,
  growthInterval: f32, knownSkips: f32, pad0: u32, pad1: u32,
};
@group(0) @binding(0) var<storage, read_write> norms: array<f32>;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read_write> scale: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
var<workgroup> partial: array<f32, ${THREADS}>;
var<workgroup> bad: atomic<u32>;
${NON_FINITE}
@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_index) lid: u32) {
  let T = u.numTensors;
  var seen = 0u;
  for (var t = lid; t < T; t = t + ${THREADS}u) { if (norms[2u * T + t] != 0.0) { seen = 1u; } }
  if (seen != 0u) { atomicOr(&bad, 1u); }
  if (u.maxNorm > 0.0) {${GLOBAL_CLIP}
  }
  workgroupBarrier();
  if (lid == 0u) {
    let found = atomicLoad(&bad) != 0u;
    let old = state[0];
    let skips = state[3];
    norms[3u * T] = 1.0 / old;
    norms[3u * T + 1u] = select(0.0, 1.0, found);
    norms[3u * T + 2u] = skips - u.knownSkips;
    if (found) {
      state[0] = old * u.backoffFactor;
      state[1] = 0.0;
      state[3] = skips + 1.0;
    } else {
      let successful = state[1] + 1.0;
      if (successful == u.growthInterval) {
        let grown = old * u.growthFactor;
        if (!nonFinite(grown)) { state[0] = grown; }
        state[1] = 0.0;
      } else {
        state[1] = successful;
      }
    }
    state[2] = select(0.0, 1.0, found);
    scale[0] = state[0];
  }
}`;

/**
 * Pass 3: the update of parameters and moments, each thread finding its tensor by binary search
 * in the offsets table. What changes from step to step (each group's decay and step size, and
 * √(1 − β₂ᵗ) after them) comes in `groupHyper`, uploaded each step, so that the uniforms stay the
 * same and the dispatch keeps its bind group. Scaled: nothing happens on a skipped step, the
 * gradient is unscaled first, and the bias corrections come from the table row of the step's
 * effective step.
 */
export function updateWgsl(scaled: boolean): string {
  return /* wgsl */ `
struct U {
  n: u32, numTensors: u32, useScale: u32, numGroups: u32,
  beta1: f32, beta2: f32, oneMinusBeta1: f32, oneMinusBeta2: f32,
  eps: f32, pad3: f32, rows: u32, pad2: f32,
};
@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> norms: array<f32>;
@group(0) @binding(5) var<storage, read> tbl: array<u32>;
@group(0) @binding(6) var<storage, read> groupHyper: array<f32>;
${scaled ? "@group(0) @binding(7) var<storage, read> steps: array<f32>;" : ""}
@group(0) @binding(${scaled ? 8 : 7}) var<uniform> u: U;
@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let T = u.numTensors;
  ${
    scaled
      ? `if (norms[3u * T + 1u] != 0.0) { return; }
  let inv = norms[3u * T];
  let row = min(u32(norms[3u * T + 2u]), u.rows - 1u) * (u.numGroups + 1u);
  let bc2Sqrt = steps[row + u.numGroups];`
      : "let bc2Sqrt = groupHyper[2u * u.numGroups];"
  }
  let stride = nwg.x * ${THREADS}u;
  for (var i = gid.x; i < u.n; i = i + stride) {
    // The tensor of element i: the last t with offset[t] <= i.
    var lo = 0u;
    var hi = T;
    while (hi - lo > 1u) {
      let mid = (lo + hi) / 2u;
      if (tbl[mid] <= i) { lo = mid; } else { hi = mid; }
    }
    var g = grad[i];
    ${scaled ? "g = g * inv;" : ""}
    if (u.useScale != 0u) { g = g * norms[T + lo]; }
    let grp = tbl[T + 1u + lo];
    let decay = groupHyper[2u * grp];
    let stepSize = ${scaled ? "steps[row + grp]" : "groupHyper[2u * grp + 1u]"};
    let mi = u.beta1 * m[i] + u.oneMinusBeta1 * g;
    let vi = u.beta2 * v[i] + u.oneMinusBeta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - stepSize * mi / (sqrt(vi) / bc2Sqrt + u.eps);
  }
}`;
}
