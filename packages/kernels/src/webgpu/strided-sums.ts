import { type Scalars, type View, VIEW_ALIGN, encode, foldGroups } from "./encode";
import type { WebGpuInternals } from "./flat-buffers";

// The finishing sums of the split reductions, gathered into as few dispatches as the device's
// bindings allow. A split-K GEMM leaves `slices` partial products one after the other (gemm-split.ts)
// and a LayerNorm's backward leaves one partial (dγ, dβ) row per block of rows (layer-norm-grad.ts):
// both finish as `out[i] = Σ_r source[r·stride + i]`. A kernel that ends several of them (the fused
// block's backward: four weight gradients with their bias gradients, two LayerNorms) encodes all of
// their sums in one dispatch instead of one each: the dispatches, not the few microseconds of
// summing, are what they cost.

/** One finishing sum: `out[i] = Σ_{r < count} source[r·stride + i]` for `i < out.size`. */
export interface StridedSum {
  /** Where row 0 starts (the rows follow `stride` floats apart in the same buffer). */
  source: View;
  stride: number;
  count: number;
  out: View;
}

/** Columns per workgroup; each column's rows are summed by {@link LANES} threads. */
const COLUMNS = 64;
const LANES = 4;

/**
 * Encode `sums`: each dispatch binds one range of one source buffer and up to the device's storage
 * bindings less one outputs, so one dispatch when they share a buffer and the device has the
 * bindings (the fused block on a device with ≥ 13), more otherwise. Sums with no output elements
 * are skipped. Each output element adds its rows in a fixed order (lanes r ≡ l mod 4, then the four
 * lanes pairwise): the same result on every run.
 */
export function encodeStridedSums(b: WebGpuInternals, sums: StridedSum[]): void {
  const { maxStorageBuffersPerShaderStage: bindings, maxStorageBufferBindingSize } =
    b.device.limits;
  const maxOutputs = Math.max(1, bindings - 1);
  const maxFloats = Math.floor(maxStorageBufferBindingSize / 4);
  let group: StridedSum[] = [];
  let lo = 0;
  let hi = 0;
  for (const s of sums) {
    if (s.out.size === 0) continue;
    const end = s.source.offset + (s.count - 1) * s.stride + s.out.size;
    const fits =
      group.length > 0 &&
      group.length < maxOutputs &&
      group[0].source.buffer === s.source.buffer &&
      Math.max(hi, end) - Math.min(lo, s.source.offset) + VIEW_ALIGN <= maxFloats;
    if (!fits && group.length > 0) {
      encodeGroup(b, group, lo, hi);
      group = [];
    }
    lo = group.length === 0 ? s.source.offset : Math.min(lo, s.source.offset);
    hi = group.length === 0 ? end : Math.max(hi, end);
    group.push(s);
  }
  if (group.length > 0) encodeGroup(b, group, lo, hi);
}

/** One dispatch: the sums' source bound as the range [lo, hi) of its buffer. */
function encodeGroup(b: WebGpuInternals, sums: StridedSum[], from: number, hi: number): void {
  // (A binding starts at a multiple of the device's offset alignment.)
  const lo = Math.floor(from / VIEW_ALIGN) * VIEW_ALIGN;
  const source: View = { buffer: sums[0].source.buffer, offset: lo, size: hi - lo };
  const u: Scalars[] = [];
  let groups = 0;
  for (const s of sums) {
    u.push(
      { i: s.source.offset - lo },
      { i: s.stride },
      { i: s.count },
      { i: s.out.size },
      { i: groups },
      { i: 0 },
      { i: 0 },
      { i: 0 },
    );
    groups += Math.ceil(s.out.size / COLUMNS);
  }
  const n = sums.length;
  encode(
    b,
    `SitStridedSums_${n}`,
    () => stridedSumsWgsl(n),
    [source, ...sums.map((s) => s.out)],
    u,
    foldGroups(b, groups),
  );
}

/**
 * WGSL summing `n` jobs from binding 0 into bindings 1…n. Uniform `jobs[2j]` = (first, stride,
 * count, len), `jobs[2j + 1].x` = the job's first workgroup (ascending); a workgroup takes
 * {@link COLUMNS} columns of one job, {@link LANES} threads per column.
 */
export function stridedSumsWgsl(n: number): string {
  const outs = Array.from({ length: n }, (_, j) => `O${j}`);
  const decl = ["P", ...outs]
    .map((name, i) => `@group(0) @binding(${i}) var<storage, read_write> ${name} : array<f32>;`)
    .join("\n");
  const write = outs.map((o, j) => `case ${j}: { ${o}[c] = t; }`).join("\n      ");
  return /* wgsl */ `struct U { jobs : array<vec4<i32>, ${2 * n}> };
${decl}
@group(0) @binding(${n + 1}) var<uniform> u : U;
var<workgroup> lanes : array<f32, ${COLUMNS * LANES}>;
@compute @workgroup_size(${COLUMNS * LANES}, 1, 1)
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  let w = i32(wid.y * nwg.x + wid.x);
  var j = 0;
  for (var t = 1; t < ${n}; t++) {
    if (w >= u.jobs[2 * t + 1].x) { j = t; }
  }
  let job = u.jobs[2 * j];
  let tid = i32(lid.x);
  // (Workgroups past the last job's columns fold onto it with c ≥ len: they write nothing.)
  let c = (w - u.jobs[2 * j + 1].x) * ${COLUMNS} + tid % ${COLUMNS};
  let lane = tid / ${COLUMNS};
  var s = 0.0;
  if (c < job.w) {
    for (var r = lane; r < job.z; r += ${LANES}) { s += P[job.x + r * job.y + c]; }
  }
  lanes[tid] = s;
  workgroupBarrier();
  if (lane == 0 && c < job.w) {
    let t = (lanes[tid] + lanes[tid + ${COLUMNS}]) + (lanes[tid + ${2 * COLUMNS}] + lanes[tid + ${3 * COLUMNS}]);
    switch j {
      ${write}
      default: {}
    }
  }
}`;
}
