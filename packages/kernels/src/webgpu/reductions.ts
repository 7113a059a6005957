import type * as tf from "@tensorflow/tfjs";
import { type WebGpuBackendLike, makeProgram } from "./program";

/** Threads of the row-wise kernels (one workgroup per row): a power of two. */
export function rowThreads(cols: number): number {
  return cols >= 1024 ? 256 : cols >= 256 ? 128 : 64;
}

/**
 * WGSL declarations for a workgroup-wide Welford reduction over `wg` threads: per-thread
 * (count, mean, M2) triples merged pairwise (Chan et al.), so that mean and variance come out of
 * one pass over the row and stay accurate when the mean is large against the spread.
 */
export function welfordDecl(wg: number): string {
  return `
  const WG = ${wg};
  var<workgroup> wN : array<f32, ${wg}>;
  var<workgroup> wMean : array<f32, ${wg}>;
  var<workgroup> wM2 : array<f32, ${wg}>;
  ${welfordMergeFn("welfordMerge", "wN", "wMean", "wM2")}
  fn sumPairs(tid : i32) {
    // Tree sum of wN and wMean (used as two plain accumulators) into index 0.
    for (var s = WG / 2; s > 0; s = s >> 1) {
      if (tid < s) {
        wN[tid] = wN[tid] + wN[tid + s];
        wMean[tid] = wMean[tid] + wMean[tid + s];
      }
      workgroupBarrier();
    }
  }`;
}

/**
 * A WGSL function `name(a, b)` merging the Welford triple at index b of the workgroup arrays
 * (count, mean, M2) into index a (Chan et al.'s pairwise update).
 */
export function welfordMergeFn(name: string, n: string, mean: string, m2: string): string {
  return `fn ${name}(a : i32, b : i32) {
    let n = ${n}[a] + ${n}[b];
    if (n > 0.0) {
      let delta = ${mean}[b] - ${mean}[a];
      ${mean}[a] = ${mean}[a] + delta * ${n}[b] / n;
      ${m2}[a] = ${m2}[a] + ${m2}[b] + delta * delta * ${n}[a] * ${n}[b] / n;
      ${n}[a] = n;
    }
  }`;
}

/**
 * WGSL statements adding `value` to a running Welford triple (count, mean, M2) held in the vars
 * `n`, `mean`, `m2`: one place for the update every row-statistics loop uses.
 */
export function welfordAdd(value: string, n: string, mean: string, m2: string): string {
  return `{
          let v = ${value};
          ${n} += 1.0;
          let delta = v - ${mean};
          ${mean} += delta / ${n};
          ${m2} += delta * (v - ${mean});
        }`;
}

/**
 * WGSL statements that leave `mu` and `rstd` (1/√(var + eps), biased variance) of the row
 * `src[base .. base + cols)` in scope, for every thread of the workgroup. `ok` guards the loads
 * (a folded dispatch's spare workgroups, rows past the end); the barriers stay unconditional.
 */
export function welfordRow(src: string, base: string, ok: string, cols: string, eps: string) {
  return `
    {
      var n = 0.0;
      var mean = 0.0;
      var m2 = 0.0;
      if (${ok}) {
        for (var c = tid; c < ${cols}; c += WG) {
          ${welfordAdd(`${src}[${base} + c]`, "n", "mean", "m2")}
        }
      }
      wN[tid] = n;
      wMean[tid] = mean;
      wM2[tid] = m2;
      workgroupBarrier();
      for (var s = WG / 2; s > 0; s = s >> 1) {
        if (tid < s) { welfordMerge(tid, tid + s); }
        workgroupBarrier();
      }
    }
    let mu = wMean[0];
    let rstd = inverseSqrt(wM2[0] / f32(${cols}) + ${eps});
    workgroupBarrier();`;
}

/**
 * The body of a LayerNorm row pass after its set-up (`tid`, `d`, `ok`, `base`, one workgroup per
 * row, the Welford arrays declared): the row's statistics, then `write(y)` for each column with
 * `y = (x − μ)·rstd·γ + β`. Shared by the LayerNorm kernel and the fused block.
 */
export function layerNormRowCode(
  x: string,
  gamma: string,
  beta: string,
  eps: string,
  write: (y: string) => string,
): string {
  return `${welfordRow(x, "base", "ok", "d", eps)}
    if (ok) {
      for (var c = tid; c < d; c += WG) {
        ${write(`(${x}[base + c] - mu) * rstd * ${gamma}[c] + ${beta}[c]`)}
      }
    }`;
}

/**
 * The body of a LayerNorm input-gradient row pass (same set-up as {@link layerNormRowCode}):
 * statistics recomputed, then `write(dx)` for each column with
 * `dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, ĝ = dy·γ.
 */
export function layerNormGradRowCode(
  dy: string,
  x: string,
  gamma: string,
  eps: string,
  write: (dx: string) => string,
): string {
  return `${welfordRow(x, "base", "ok", "d", eps)}
    var s1 = 0.0;
    var s2 = 0.0;
    if (ok) {
      for (var c = tid; c < d; c += WG) {
        let g = ${dy}[base + c] * ${gamma}[c];
        s1 += g;
        s2 += g * (${x}[base + c] - mu) * rstd;
      }
    }
    wN[tid] = s1;
    wMean[tid] = s2;
    workgroupBarrier();
    sumPairs(tid);
    let m1 = wN[0] / f32(d);
    let m2 = wMean[0] / f32(d);
    if (ok) {
      for (var c = tid; c < d; c += WG) {
        let g = ${dy}[base + c] * ${gamma}[c];
        let xh = (${x}[base + c] - mu) * rstd;
        ${write("rstd * (g - m1 - xh * m2)")}
      }
    }`;
}

/** Rows per block of {@link blockColumnSums}. */
const BLOCK_ROWS = 32;
const BLOCK_THREADS = 64;

/**
 * Partial column sums over blocks of 32 rows of `dy [M, D]`: output `[R, 1, D]` with
 * R = ⌈M/32⌉ (a bias gradient's partial sums). One dispatch; {@link finishColumnSum} adds the
 * blocks.
 */
export function blockColumnSums(backend: WebGpuBackendLike, dy: tf.TensorInfo): tf.TensorInfo {
  const [m, d] = dy.shape;
  const blocks = Math.ceil(m / BLOCK_ROWS);
  const cpt = Math.ceil(d / BLOCK_THREADS);
  const program = makeProgram({
    key: `sitBlockColumnSums_${cpt}`,
    outputShape: [blocks, 1, d],
    groups: blocks,
    threads: BLOCK_THREADS,
    variableNames: ["DY"],
    code: `
  const WG = ${BLOCK_THREADS};
  const CPT = ${cpt};
  const RB = ${BLOCK_ROWS};
  fn main(index : i32) {
    let m = uniforms.dYShape[0];
    let d = uniforms.dYShape[1];
    let blk = sitGroup();
    let tid = i32(localId.x);
    let valid = blk < uniforms.outShape[0];
    var acc : array<f32, CPT>;
    for (var rr = 0; rr < RB; rr++) {
      let r = blk * RB + rr;
      if (valid && r < m) {
        for (var u = 0; u < CPT; u++) {
          let c = tid + u * WG;
          if (c < d) { acc[u] += DY[r * d + c]; }
        }
      }
    }
    if (valid) {
      for (var u = 0; u < CPT; u++) {
        let c = tid + u * WG;
        if (c < d) { result[blk * d + c] = acc[u]; }
      }
    }
  }`,
  });
  return backend.runWebGPUProgram(program, [dy], "float32");
}

/** Threads of {@link finishColumnSum}'s workgroups: columns per workgroup × lanes per column. */
const FINISH_THREADS = 256;

/**
 * Σ over the blocks of `partials [R, K, D]`, part `part` → `[D]`. One dispatch: a workgroup per
 * `cols` columns (the power of two ≥ D, at most 64), 256 / `cols` lanes of blocks per column
 * (coalesced reads: neighbouring threads read neighbouring columns, then the next block), the lanes
 * added in shared memory as a tree. Its workgroups loop over R / lanes blocks one after the other,
 * so R must stay small: {@link columnSum} blocks large partials again first.
 */
export function finishColumnSum(
  backend: WebGpuBackendLike,
  partials: tf.TensorInfo,
  part: number,
): tf.TensorInfo {
  const [, , d] = partials.shape;
  const cols = Math.min(64, 2 ** Math.ceil(Math.log2(Math.max(d, 1))));
  const program = makeProgram({
    key: `sitFinishColumnSum_${cols}`,
    outputShape: [d],
    groups: Math.ceil(d / cols),
    threads: FINISH_THREADS,
    variableNames: ["P"],
    uniforms: "part : i32,",
    code: `
  const COLS = ${cols};
  const LANES = ${FINISH_THREADS / cols};
  var<workgroup> lanes : array<f32, ${FINISH_THREADS}>;
  fn main(index : i32) {
    let tid = i32(localId.x);
    let c = sitGroup() * COLS + tid % COLS;
    let lane = tid / COLS;
    let blocks = uniforms.pShape[0];
    let k = uniforms.pShape[1];
    let d = uniforms.pShape[2];
    var s = 0.0;
    if (c < d) {
      for (var b = lane; b < blocks; b += LANES) { s += P[(b * k + uniforms.part) * d + c]; }
    }
    lanes[tid] = s;
    workgroupBarrier();
    for (var span = LANES / 2; span > 0; span = span >> 1) {
      if (lane < span) { lanes[tid] = lanes[tid] + lanes[tid + span * COLS]; }
      workgroupBarrier();
    }
    if (lane == 0 && c < d) { result[c] = lanes[tid]; }
  }`,
  });
  return backend.runWebGPUProgram(program, [partials], "float32", [
    { type: "int32", data: [part] },
  ]);
}

/**
 * Most blocks {@link columnSum} leaves to {@link finishColumnSum}'s single sequential pass; above
 * it the partials `[R, 1, D]` are summed in blocks of 32 again (one dispatch per level, R/32 each).
 */
export const FINISH_MAX_BLOCKS = 1024;

/**
 * Column sums of `dy [M, D]` → `[D]` (a bias gradient): {@link blockColumnSums}, again on its
 * partials while more than {@link FINISH_MAX_BLOCKS} are left, then {@link finishColumnSum}. Two
 * dispatches up to 32k rows, one more per factor of 32 beyond (6.4M pixel rows of a 224² image
 * batch: four), so no workgroup adds more than ~1024 values in sequence. The intermediate partials
 * are freed here.
 */
export function columnSum(backend: WebGpuBackendLike, dy: tf.TensorInfo): tf.TensorInfo {
  const d = dy.shape[1];
  let partials = blockColumnSums(backend, dy);
  while (partials.shape[0] > FINISH_MAX_BLOCKS) {
    // [R, 1, D] viewed as the rows [R, D] of the next level (same buffer).
    const rows = { ...partials, shape: [partials.shape[0], d] };
    const next = blockColumnSums(backend, rows);
    backend.disposeData(partials.dataId);
    partials = next;
  }
  const out = finishColumnSum(backend, partials, 0);
  backend.disposeData(partials.dataId);
  return out;
}
