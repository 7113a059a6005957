// WGSL of the fused MoCo-v3 loss over one or two (query, key) pairs, `Q1 [B, D]` against `K1`
// and `Q2` against `K2`: one workgroup per query row (2B rows for two pairs), which normalises its
// query, forms its B logits against the normalised keys of its pair (one thread per key), and
// reduces them with an online log-sum-exp. Forward: each row's cross-entropy, then one workgroup
// adds the rows (two dispatches). Backward: per row, the softmax weights (P − I)·rk go to a
// scratch row, then dq̂ = (2/B)·dy·Σ_j w_j·k_j (one thread per feature), through the
// normalisation: dq = r·dq̂ − r³·q·(dq̂·q) (one dispatch).

const WG = 64;

const COMMON = `
struct U { B : i32, D : i32, rows : i32, invTemp : f32, epsSq : f32, scale : f32 };
var<workgroup> ra : array<f32, ${WG}>;
var<workgroup> rb : array<f32, ${WG}>;
fn q(h : i32, idx : i32) -> f32 { if (h == 0) { return Q1[idx]; } return Q2[idx]; }
fn k(h : i32, idx : i32) -> f32 { if (h == 0) { return K1[idx]; } return K2[idx]; }
fn treeSum(tid : i32, v : f32) -> f32 {
  ra[tid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}; s > 0; s = s >> 1) {
    if (tid < s) { ra[tid] = ra[tid] + ra[tid + s]; }
    workgroupBarrier();
  }
  let r = ra[0];
  workgroupBarrier();
  return r;
}
// Logit of this row's query against key j of its pair (rq: the query's 1/‖q‖).
fn logit(h : i32, row : i32, j : i32, rq : f32) -> f32 {
  var dot = 0.0;
  var kk = 0.0;
  for (var d = 0; d < u.D; d++) {
    let kv = k(h, j * u.D + d);
    dot += q(h, row * u.D + d) * kv;
    kk += kv * kv;
  }
  return dot * rq * inverseSqrt(max(kk, u.epsSq)) * u.invTemp;
}`;

/** Row prologue: h (pair), row, rq, and the row's log-sum-exp `lse` and positive logit `pos`. */
const ROW = `
  let tid = i32(lid.x);
  let i = i32(wid.x);
  let h = i / u.B;
  let row = i % u.B;
  var ss = 0.0;
  for (var d = tid; d < u.D; d += ${WG}) { let v = q(h, row * u.D + d); ss += v * v; }
  let sumSq = treeSum(tid, ss);
  let rq = inverseSqrt(max(sumSq, u.epsSq));
  var mx = -3.0e38;
  var se = 0.0;
  var p = 0.0;
  for (var j = tid; j < u.B; j += ${WG}) {
    let l = logit(h, row, j, rq);
    if (j == row) { p = l; }
    let m2 = max(mx, l);
    se = se * exp(mx - m2) + exp(l - m2);
    mx = m2;
  }
  ra[tid] = mx;
  rb[tid] = se;
  workgroupBarrier();
  for (var s = ${WG / 2}; s > 0; s = s >> 1) {
    if (tid < s) {
      let m2 = max(ra[tid], ra[tid + s]);
      rb[tid] = rb[tid] * exp(ra[tid] - m2) + rb[tid + s] * exp(ra[tid + s] - m2);
      ra[tid] = m2;
    }
    workgroupBarrier();
  }
  let lse = ra[0] + log(rb[0]);
  workgroupBarrier();
  let pos = treeSum(tid, p);`;

// Inputs read-only (one tensor may be passed twice: read-only bindings may alias, writable ones
// may not); outputs and scratch are always new buffers.
const WRITTEN = new Set(["Rows", "W", "DQ1", "DQ2"]);

function bindings(names: string[]): string {
  const decl = names
    .map((n, i) => {
      const access = WRITTEN.has(n) ? "read_write" : "read";
      return `@group(0) @binding(${i}) var<storage, ${access}> ${n} : array<f32>;`;
    })
    .join("\n");
  return `${decl}\n@group(0) @binding(${names.length}) var<uniform> u : U;`;
}

/** Forward, pass 1: `Rows[i]` = the cross-entropy of query row i. */
export function contrastiveRowsWgsl(): string {
  return `${bindings(["Q1", "Q2", "K1", "K2", "Rows"])}
${COMMON}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>) {
  ${ROW}
  if (tid == 0) { Rows[i] = lse - pos; }
}`;
}

/** Forward, pass 2 (one workgroup): `L = scale · Σ Rows` (scale = 2τ/B). */
export function contrastiveSumWgsl(): string {
  return `
struct U { B : i32, D : i32, rows : i32, invTemp : f32, epsSq : f32, scale : f32 };
@group(0) @binding(0) var<storage, read> Rows : array<f32>;
@group(0) @binding(1) var<storage, read_write> L : array<f32>;
@group(0) @binding(2) var<uniform> u : U;
var<workgroup> ra : array<f32, ${WG}>;
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(local_invocation_id) lid : vec3<u32>) {
  let tid = i32(lid.x);
  var s = 0.0;
  for (var r = tid; r < u.rows; r += ${WG}) { s += Rows[r]; }
  ra[tid] = s;
  workgroupBarrier();
  for (var w = ${WG / 2}; w > 0; w = w >> 1) {
    if (tid < w) { ra[tid] = ra[tid] + ra[tid + w]; }
    workgroupBarrier();
  }
  if (tid == 0) { L[0] = ra[0] * u.scale; }
}`;
}

/** Backward (scale = 2/B): dQ1, dQ2 from the loss gradient `DY[0]`; `W [rows, B]` is scratch. */
export function contrastiveGradWgsl(): string {
  return `${bindings(["Q1", "Q2", "K1", "K2", "DY", "W", "DQ1", "DQ2"])}
${COMMON}
fn setDq(h : i32, idx : i32, v : f32) { if (h == 0) { DQ1[idx] = v; } else { DQ2[idx] = v; } }
fn getDq(h : i32, idx : i32) -> f32 { if (h == 0) { return DQ1[idx]; } return DQ2[idx]; }
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>) {
  ${ROW}
  // w_j = (P_j − [j = row])·rk_j, so that Σ_j w_j·k_j = Σ_j (P − I)_j·k̂_j.
  for (var j = tid; j < u.B; j += ${WG}) {
    let l = logit(h, row, j, rq);
    var kk = 0.0;
    for (var d = 0; d < u.D; d++) { let kv = k(h, j * u.D + d); kk += kv * kv; }
    let w = exp(l - lse) - select(0.0, 1.0, j == row);
    W[i * u.B + j] = w * inverseSqrt(max(kk, u.epsSq));
  }
  storageBarrier();
  let g = u.scale * DY[0];
  var part = 0.0;
  for (var d = tid; d < u.D; d += ${WG}) {
    var acc = 0.0;
    for (var j = 0; j < u.B; j++) { acc += W[i * u.B + j] * k(h, j * u.D + d); }
    let dqn = acc * g;
    setDq(h, row * u.D + d, dqn);
    part += dqn * q(h, row * u.D + d);
  }
  let along = treeSum(tid, part) * rq * rq * rq;
  let onSphere = select(0.0, 1.0, sumSq > u.epsSq);
  for (var d = tid; d < u.D; d += ${WG}) {
    let idx = row * u.D + d;
    setDq(h, idx, getDq(h, idx) * rq - q(h, idx) * along * onSphere);
  }
}`;
}
