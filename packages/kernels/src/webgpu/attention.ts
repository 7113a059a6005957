import * as tf from "@tensorflow/tfjs";
import { portableMultiHeadAttention, portablePackedSelfAttention } from "../attention";
import type { AttentionResult, ResolvedAttentionOptions } from "../registry";
import {
  DKDV_VEC4_THREADS,
  PLACE_WGSL,
  dkdvVec4,
  dqVec4,
  forwardVec4,
  statsDqVec4,
  statsVec4,
  vec4Attention,
  vec4Preamble,
} from "./attention-vec4";
import { type WebGpuBackendLike, kernelArgs, makeProgram } from "./program";

/** tfjs kernel names of the fused attention (registered for the `webgpu` backend). */
export const ATTENTION_KERNEL = "SitPackedAttention";
export const ATTENTION_GRAD_KERNEL = "SitPackedAttentionGrad";

/** Query (or key) rows per workgroup: one thread each. */
const ROWS = 32;
/** Largest head dimension the kernels take (private arrays of this size per thread). */
export const MAX_HEAD_DIM = 512;

/** Rows of a shared-memory tile of K/V (or Q/dO): two tiles of `tile·hd` floats fit in 16 KiB. */
function tileRows(hd: number): number {
  return Math.max(1, Math.min(32, Math.floor(2048 / hd)));
}

/**
 * WGSL preamble shared by the attention programs: the (batch, head, row-tile) of this workgroup
 * and the thread's row, read from the packed `QKV [B, N, 3D]` (q, k, v along the last axis, heads
 * contiguous slices of hd inside each). Compile-time HD and tile sizes; everything else uniform.
 */
function preamble(hd: number): string {
  const kt = tileRows(hd);
  return `
  const HD = ${hd};
  const ROWS = ${ROWS};
  const KT = ${kt};
  var<workgroup> tileA : array<f32, ${kt * hd}>;
  var<workgroup> tileB : array<f32, ${kt * hd}>;
  var<workgroup> tileS : array<vec2<f32>, ${kt}>;
  ${PLACE_WGSL}`;
}

const UNIFORMS = "numHeads : i32, scale : f32,";

function attentionProgram(
  key: string,
  hd: number,
  outputShape: number[],
  b: number,
  heads: number,
  n: number,
  variableNames: string[],
  kind: AttentionPassKind,
) {
  const pass = attentionPass(kind, hd);
  return makeProgram({
    key: `${key}_${hd}`,
    outputShape,
    groups: b * heads * Math.ceil(n / ROWS),
    threads: pass.threads,
    variableNames,
    uniforms: UNIFORMS,
    code: attentionMain(hd, pass, "main"),
  });
}

/** The attention passes: forward; backward statistics, dQ, both in one, and dK + dV. */
export type AttentionPassKind = "fwd" | "stats" | "dq" | "statsDq" | "dkdv";

/** One attention pass's WGSL body and its threads per workgroup (one workgroup per 32 rows). */
export interface AttentionPass {
  body: string;
  threads: number;
  vec4: boolean;
}

/**
 * The pass `kind` for head size `hd`: the register-resident vec4 passes (attention-vec4.ts) where
 * they apply, else the general ones below.
 */
export function attentionPass(kind: AttentionPassKind, hd: number): AttentionPass {
  if (vec4Attention(hd)) {
    const body = {
      fwd: forwardVec4,
      stats: statsVec4,
      dq: dqVec4,
      statsDq: statsDqVec4,
      dkdv: dkdvVec4,
    }[kind](hd);
    return { body, threads: kind === "dkdv" ? DKDV_VEC4_THREADS : ROWS, vec4: true };
  }
  const body = {
    fwd: forwardBody,
    stats: statsBody,
    dq: dqBody,
    statsDq: statsDqBody,
    dkdv: dkdvBody,
  }[kind]();
  return { body, threads: ROWS, vec4: false };
}

/**
 * The WGSL of one attention pass as a function `fnName(index)`: the preamble and `body` (one of
 * the `*Body()` texts below). It reads `uniforms.qKVShape` ([B, N, 3D]), `uniforms.numHeads`,
 * `uniforms.scale`, `localId` and `sitGroup()`, as tfjs's program generator declares them; the
 * fused block declares the same names itself (see block-wgsl.ts).
 */
export function attentionMain(hd: number, pass: AttentionPass, fnName: string): string {
  return `${pass.vec4 ? vec4Preamble(hd, pass.threads) : preamble(hd)}
  fn ${fnName}(index : i32) {
    let P = place();
    let tid = i32(localId.x);
    // From the uniforms, not from P: WGSL's uniformity analysis must see the loop bounds uniform.
    let n = uniforms.qKVShape[1];
    let d3 = uniforms.qKVShape[2];
    let d = d3 / 3;
    let base = P.b * n * d3 + P.head * HD;
    let scale = uniforms.scale;
    let tiles = (n + KT - 1) / KT;
    ${pass.body}
  }`;
}

/** Threads per workgroup of the attention passes (one query or key row each). */
export const ATTENTION_ROWS = ROWS;

/**
 * Load rows `t·KT …` of the packed operand at column offset `colA` (and `colB`) of every token into
 * `tileA` (`tileB`), cooperatively; the caller brackets it with barriers.
 */
function loadTile(colA: string, colB: string | null, extra = ""): string {
  return `
      for (var e = tid; e < KT * HD; e += ROWS) {
        let j = t * KT + e / HD;
        if (P.valid && j < n) {
          let off = base + j * d3 + e % HD;
          tileA[e] = ${colA};
          ${colB ? `tileB[e] = ${colB};` : ""}
        }
      }
      ${extra}`;
}

/** Forward: O = softmax(scale·QKᵀ)·V per (batch, head), online softmax over key tiles. */
function forwardBody(): string {
  return `
    var q : array<f32, HD>;
    var acc : array<f32, HD>;
    var sc : array<f32, KT>;
    if (P.rowOk) {
      for (var c = 0; c < HD; c++) { q[c] = QKV[base + P.row * d3 + c] * scale; }
    }
    var mx = -3.0e38;
    var l = 0.0;
    for (var t = 0; t < tiles; t++) {
      ${loadTile("QKV[off + d]", "QKV[off + 2 * d]")}
      workgroupBarrier();
      let cnt = min(KT, n - t * KT);
      if (P.rowOk) {
        var tmax = mx;
        for (var jj = 0; jj < cnt; jj++) {
          var s = 0.0;
          for (var c = 0; c < HD; c++) { s += q[c] * tileA[jj * HD + c]; }
          sc[jj] = s;
          tmax = max(tmax, s);
        }
        let corr = exp(mx - tmax);
        l = l * corr;
        for (var c = 0; c < HD; c++) { acc[c] = acc[c] * corr; }
        for (var jj = 0; jj < cnt; jj++) {
          let p = exp(sc[jj] - tmax);
          l += p;
          for (var c = 0; c < HD; c++) { acc[c] += p * tileB[jj * HD + c]; }
        }
        mx = tmax;
      }
      workgroupBarrier();
    }
    if (P.rowOk) {
      let inv = 1.0 / l;
      let ob = (P.b * n + P.row) * d + P.head * HD;
      for (var c = 0; c < HD; c++) { result[ob + c] = acc[c] * inv; }
    }`;
}

/**
 * Backward 1: per query row, logsumexp of its logits and δ = Σ dO·O → `out [B, H, N, 2]`
 * (`result` in a pass of its own).
 */
function statsBody(out = "result"): string {
  return `
    var q : array<f32, HD>;
    if (P.rowOk) {
      for (var c = 0; c < HD; c++) { q[c] = QKV[base + P.row * d3 + c] * scale; }
    }
    var mx = -3.0e38;
    var l = 0.0;
    for (var t = 0; t < tiles; t++) {
      ${loadTile("QKV[off + d]", null)}
      workgroupBarrier();
      let cnt = min(KT, n - t * KT);
      if (P.rowOk) {
        for (var jj = 0; jj < cnt; jj++) {
          var s = 0.0;
          for (var c = 0; c < HD; c++) { s += q[c] * tileA[jj * HD + c]; }
          let m2 = max(mx, s);
          l = l * exp(mx - m2) + exp(s - m2);
          mx = m2;
        }
      }
      workgroupBarrier();
    }
    if (P.rowOk) {
      let ob = (P.b * n + P.row) * d + P.head * HD;
      var delta = 0.0;
      for (var c = 0; c < HD; c++) { delta += DY[ob + c] * O[ob + c]; }
      let sb = ((P.b * uniforms.numHeads + P.head) * n + P.row) * 2;
      ${out}[sb] = mx + log(l);
      ${out}[sb + 1] = delta;
    }`;
}

/** Backward 2: dQ = scale·Σ_j dS_ij·K_j with dS = P ⊙ (dO·Vᵀ − δ), into dQKV's q columns. */
function dqBody(): string {
  return `
    var q : array<f32, HD>;
    var dO : array<f32, HD>;
    var dq : array<f32, HD>;
    var lse = 0.0;
    var delta = 0.0;
    if (P.rowOk) {
      let ob = (P.b * n + P.row) * d + P.head * HD;
      for (var c = 0; c < HD; c++) {
        q[c] = QKV[base + P.row * d3 + c] * scale;
        dO[c] = DY[ob + c];
      }
      let sb = ((P.b * uniforms.numHeads + P.head) * n + P.row) * 2;
      lse = ST[sb];
      delta = ST[sb + 1];
    }
    for (var t = 0; t < tiles; t++) {
      ${loadTile("QKV[off + d]", "QKV[off + 2 * d]")}
      workgroupBarrier();
      let cnt = min(KT, n - t * KT);
      if (P.rowOk) {
        for (var jj = 0; jj < cnt; jj++) {
          var s = 0.0;
          var dp = 0.0;
          for (var c = 0; c < HD; c++) {
            s += q[c] * tileA[jj * HD + c];
            dp += dO[c] * tileB[jj * HD + c];
          }
          let ds = exp(s - lse) * (dp - delta);
          for (var c = 0; c < HD; c++) { dq[c] += ds * tileA[jj * HD + c]; }
        }
      }
      workgroupBarrier();
    }
    if (P.rowOk) {
      for (var c = 0; c < HD; c++) { result[base + P.row * d3 + c] = dq[c] * scale; }
    }`;
}

/**
 * Backward 1 and 2 in one pass (the fused block): each thread writes its query row's statistics
 * to `ST` (bound read-write; dK/dV's pass reads them) and reads them back for its dQ. No other
 * thread reads them in this pass, so no barrier is needed between the two.
 */
function statsDqBody(): string {
  return `{ ${statsBody("ST")} }
    { ${dqBody()} }`;
}

/**
 * Backward 3: per key row j, dV_j = Σ_i P_ij·dO_i and dK_j = scale·Σ_i dS_ij·Q_i, over tiles of
 * query rows (Q and dO in shared memory with their logsumexp and δ), into dQKV's k and v columns.
 */
function dkdvBody(): string {
  return `
    var k : array<f32, HD>;
    var v : array<f32, HD>;
    var dk : array<f32, HD>;
    var dv : array<f32, HD>;
    if (P.rowOk) {
      for (var c = 0; c < HD; c++) {
        k[c] = QKV[base + P.row * d3 + d + c] * scale;
        v[c] = QKV[base + P.row * d3 + 2 * d + c];
      }
    }
    let statsBase = (P.b * uniforms.numHeads + P.head) * n;
    for (var t = 0; t < tiles; t++) {
      for (var e = tid; e < KT * HD; e += ROWS) {
        let i = t * KT + e / HD;
        if (P.valid && i < n) {
          tileA[e] = QKV[base + i * d3 + e % HD];
          tileB[e] = DY[(P.b * n + i) * d + P.head * HD + e % HD];
        }
      }
      for (var e = tid; e < KT; e += ROWS) {
        let i = t * KT + e;
        if (P.valid && i < n) { tileS[e] = vec2<f32>(ST[(statsBase + i) * 2], ST[(statsBase + i) * 2 + 1]); }
      }
      workgroupBarrier();
      let cnt = min(KT, n - t * KT);
      if (P.rowOk) {
        for (var ii = 0; ii < cnt; ii++) {
          var s = 0.0;
          var dp = 0.0;
          for (var c = 0; c < HD; c++) {
            s += tileA[ii * HD + c] * k[c];
            dp += tileB[ii * HD + c] * v[c];
          }
          let p = exp(s - tileS[ii].x);
          let ds = p * (dp - tileS[ii].y);
          for (var c = 0; c < HD; c++) {
            dv[c] += p * tileB[ii * HD + c];
            dk[c] += ds * tileA[ii * HD + c];
          }
        }
      }
      workgroupBarrier();
    }
    if (P.rowOk) {
      let ob = base + P.row * d3;
      for (var c = 0; c < HD; c++) {
        result[ob + d + c] = dk[c] * scale;
        result[ob + 2 * d + c] = dv[c];
      }
    }`;
}

function shapeOf(qkv: tf.TensorInfo, heads: number) {
  const [b, n, d3] = qkv.shape;
  return { b, n, d: d3 / 3, hd: d3 / 3 / heads };
}

function uniforms(attrs: Record<string, unknown>) {
  return [
    { type: "int32" as const, data: [attrs.numHeads as number] },
    { type: "float32" as const, data: [attrs.scale as number] },
  ];
}

function attentionForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = kernelArgs(args);
  const heads = attrs.numHeads as number;
  const { b, n, d, hd } = shapeOf(inputs.qkv, heads);
  const program = attentionProgram("sitAttnFwd", hd, [b, n, d], b, heads, n, ["QKV"], "fwd");
  return backend.runWebGPUProgram(program, [inputs.qkv], "float32", uniforms(attrs));
}

/** dQKV `[B, N, 3D]` from dO, QKV and O: three dispatches (row statistics, dQ, dK + dV). */
function attentionBackward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = kernelArgs(args);
  const { dy, qkv, o } = inputs;
  const heads = attrs.numHeads as number;
  const { b, n, d, hd } = shapeOf(qkv, heads);
  const u = uniforms(attrs);
  const run = (
    p: ReturnType<typeof makeProgram>,
    ins: tf.TensorInfo[],
    out?: tf.TensorInfo,
  ): tf.TensorInfo => (backend as WebGpuBackendLike).runWebGPUProgram(p, ins, "float32", u, out);
  const stats = run(
    attentionProgram(
      "sitAttnStats",
      hd,
      [b, heads, n, 2],
      b,
      heads,
      n,
      ["QKV", "DY", "O"],
      "stats",
    ),
    [qkv, dy, o],
  );
  const names = ["QKV", "DY", "ST"];
  const dqkv = run(attentionProgram("sitAttnDq", hd, [b, n, 3 * d], b, heads, n, names, "dq"), [
    qkv,
    dy,
    stats,
  ]);
  run(
    attentionProgram("sitAttnDkDv", hd, [b, n, 3 * d], b, heads, n, names, "dkdv"),
    [qkv, dy, stats],
    dqkv,
  );
  backend.disposeData(stats.dataId);
  return dqkv;
}

let registered = false;

/** Register the fused attention kernels and the forward's gradient with tfjs (once). */
export function registerAttentionKernels(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({
    kernelName: ATTENTION_KERNEL,
    backendName: "webgpu",
    kernelFunc: attentionForward as unknown as tf.KernelFunc,
  });
  tf.registerKernel({
    kernelName: ATTENTION_GRAD_KERNEL,
    backendName: "webgpu",
    kernelFunc: attentionBackward as unknown as tf.KernelFunc,
  });
  tf.registerGradient({
    kernelName: ATTENTION_KERNEL,
    inputsToSave: ["qkv"],
    outputsToSave: [true],
    gradFunc: (dy, [qkv, o], attrs) => {
      const dqkv = tf
        .engine()
        .runKernel(ATTENTION_GRAD_KERNEL, { dy: dy as tf.Tensor, qkv, o }, attrs) as tf.Tensor;
      return { qkv: () => dqkv };
    },
  });
}

/**
 * The `packedSelfAttention` override for webgpu: one fused dispatch forward (q, k, v read in place
 * from the packed projection, output written with heads merged), three backward (into a packed
 * gradient). Attention maps (`returnProbabilities`) and head sizes above {@link MAX_HEAD_DIM} go
 * to the portable implementation.
 */
export function webgpuPackedSelfAttention(
  qkv: tf.Tensor3D,
  options: ResolvedAttentionOptions,
): AttentionResult {
  const hd = qkv.shape[2] / 3 / options.numHeads;
  if (options.returnProbabilities || hd > MAX_HEAD_DIM)
    return portablePackedSelfAttention(qkv, options);
  registerAttentionKernels();
  const output = tf
    .engine()
    .runKernel(ATTENTION_KERNEL, { qkv }, { numHeads: options.numHeads, scale: options.scale });
  return { output: output as tf.Tensor3D };
}

/**
 * The `multiHeadAttention` override for webgpu: self-attention shapes (Nq = Nk) go through the
 * fused kernel after one concat (whose gradient is three slices); others to the portable code.
 */
export function webgpuMultiHeadAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  options: ResolvedAttentionOptions,
): AttentionResult {
  if (q.shape[1] !== k.shape[1] || options.returnProbabilities)
    return portableMultiHeadAttention(q, k, v, options);
  const output = tf.tidy(() => webgpuPackedSelfAttention(tf.concat([q, k, v], 2), options).output);
  return { output };
}
