import * as tf from "@tensorflow/tfjs";
import { portableMultiHeadAttention, portablePackedSelfAttention } from "../attention";
import type { AttentionResult, ResolvedAttentionOptions } from "../registry";
import {
  MAX_HEAD_DIM,
  dkdvBody,
  dqBody,
  forwardBody,
  generalPreamble,
  statsBody,
  statsDqBody,
} from "./attention-general";
import { ATTENTION_ROWS as ROWS } from "./attention-place";
import {
  DKDV_VEC4_THREADS,
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
  return `${pass.vec4 ? vec4Preamble(hd, pass.threads) : generalPreamble(hd)}
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
