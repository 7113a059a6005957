import * as tf from "@tensorflow/tfjs";
import { type Scalars, encode, viewOf } from "./encode";
import {
  type WebGpuInternals,
  gridWorkgroups,
  newTensorInfo,
  scratchBuffer,
  webgpuInternals,
} from "./flat-buffers";
import { encodeStridedSums } from "./strided-sums";
import { registerWebgpuKernels } from "./program";

// The tail of SiT's reconstruction head as one tfjs kernel each way on webgpu: patches
// `[B, gh·gw, p·p·C]` → NHWC image `[B, gh·p, gw·p, C]` plus a per-channel bias (ConvTranspose2d's)
// in one dispatch; backward, the patches' gradient (the same index map, gathered from dy) with each
// workgroup's per-channel sums of dy in one dispatch, and the bias gradient from those sums in
// another.

export const UNPATCHIFY_BIAS_KERNEL = "SitUnpatchifyBias";
export const UNPATCHIFY_BIAS_GRAD_KERNEL = "SitUnpatchifyBiasGrad";
// The patch embedding's first step with the same index map: NHWC images → patches in one
// dispatch (SitPatchify), its gradient the plain inverse (SitUnpatchify), each the other's
// gradient; nothing saved (the map is in the attributes).
export const PATCHIFY_KERNEL = "SitPatchify";
export const UNPATCHIFY_KERNEL = "SitUnpatchify";

const THREADS = 256;

interface Attrs {
  patchSize: number;
  gridH: number;
  gridW: number;
}

// Image element e = ((b·H + y)·W + x)·C + c ↔ patch element ((b·N + n)·ppC + k), with
// n = (y / p)·gw + x / p and k = ((y % p)·p + x % p)·C + c.
const INDEX = `
struct U { n : i32, H : i32, W : i32, C : i32, p : i32, gw : i32 };
fn patchIndex(e : i32) -> i32 {
  let c = e % u.C;
  let x = (e / u.C) % u.W;
  let y = (e / (u.C * u.W)) % u.H;
  let b = e / (u.C * u.W * u.H);
  let tokens = (u.H / u.p) * u.gw;
  let n = (y / u.p) * u.gw + x / u.p;
  let k = ((y % u.p) * u.p + x % u.p) * u.C + c;
  return (b * tokens + n) * (u.p * u.p * u.C) + k;
}`;

/**
 * Over the image's elements e: `scatter` writes image → patches (`DP[patchIndex(e)] = DY[e]`: the
 * bias kernel's patch gradient, and patchify), else gathers patches → image, with the bias or not.
 */
function wgsl(scatter: boolean, bias = !scatter): string {
  const [src, extra, dst] = scatter ? ["DY", "", "DP"] : ["P", bias ? "Bias" : "", "Out"];
  const reads = [src, ...(extra ? [extra] : [])];
  const decl = [...reads, dst]
    .map((n, i) => {
      const access = n === dst ? "read_write" : "read";
      return `@group(0) @binding(${i}) var<storage, ${access}> ${n} : array<f32>;`;
    })
    .join("\n");
  const body = scatter
    ? "DP[patchIndex(e)] = DY[e];"
    : `Out[e] = P[patchIndex(e)]${bias ? " + Bias[e % u.C]" : ""};`;
  return `${INDEX}
${decl}
@group(0) @binding(${reads.length + 1}) var<uniform> u : U;
@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  for (var e = i32(gid.x); e < u.n; e += i32(nwg.x) * ${THREADS}) { ${body} }
}`;
}

type Args = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: Attrs };

function imageShape(patches: tf.TensorInfo, a: Attrs): [number, number, number, number] {
  const [b, , ppc] = patches.shape;
  return [b, a.gridH * a.patchSize, a.gridW * a.patchSize, ppc / (a.patchSize * a.patchSize)];
}

function uniforms([b, h, w, c]: number[], a: Attrs): Scalars[] {
  return [{ i: b * h * w * c }, { i: h }, { i: w }, { i: c }, { i: a.patchSize }, { i: a.gridW }];
}

function forward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const shape = imageShape(inputs.patches, attrs);
  const out = newTensorInfo(b, shape);
  const n = tf.util.sizeFromShape(shape);
  const views = [inputs.patches, inputs.bias, out].map((t) => viewOf(b, t));
  encode(b, "SitUnpatchifyBias", () => wgsl(false), views, uniforms(shape, attrs), [
    gridWorkgroups(b, n, THREADS),
    1,
    1,
  ]);
  return out;
}

/** The most workgroups of the backward's pass (a GPU's worth: each thread loops over the rest). */
const GRAD_MAX_GROUPS = 1024;

/**
 * Workgroups of the backward's pass over `n` elements of C channels: a multiple of C, so that
 * the grid stride (groups·256) is one too and each thread meets a single channel.
 */
function gradGroups(b: WebGpuInternals, n: number, c: number): number {
  const limit = Math.min(GRAD_MAX_GROUPS, b.device.limits.maxComputeWorkgroupsPerDimension);
  const want = Math.min(Math.ceil(n / THREADS), limit);
  return Math.max(c, Math.floor(want / c) * c);
}

/**
 * The backward's pass: the patches' gradient (as {@link wgsl}'s scatter) and, from the same reads,
 * each workgroup's per-channel sums of dy into `Part [groups, C]` (its threads each meet one
 * channel: the grid stride is a multiple of C; thread r < C adds, in order, the sums of the
 * threads r, r + C, …, which share a channel).
 */
function gradWgsl(): string {
  return `${INDEX}
@group(0) @binding(0) var<storage, read_write> DY : array<f32>;
@group(0) @binding(1) var<storage, read_write> DP : array<f32>;
@group(0) @binding(2) var<storage, read_write> Part : array<f32>;
@group(0) @binding(3) var<uniform> u : U;
var<workgroup> sums : array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(local_invocation_id) lid : vec3<u32>,
    @builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  var s = 0.0;
  for (var e = i32(gid.x); e < u.n; e += i32(nwg.x) * ${THREADS}) {
    let v = DY[e];
    DP[patchIndex(e)] = v;
    s += v;
  }
  let tid = i32(lid.x);
  sums[tid] = s;
  workgroupBarrier();
  // Thread t holds channel (first + t) % C, first = this workgroup's first element.
  let first = i32(wid.x) * ${THREADS};
  for (var r = tid; r < u.C; r += ${THREADS}) {
    let c = (first + r) % u.C;
    var t = 0.0;
    for (var j = r; j < ${THREADS}; j += u.C) { t += sums[j]; }
    Part[i32(wid.x) * u.C + c] = t;
  }
}`;
}

function backward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as Args & { attrs: Attrs & { patchesShape: number[] } };
  const b = webgpuInternals(backend);
  const { dy } = inputs;
  const shape = dy.shape;
  const n = tf.util.sizeFromShape(shape);
  const c = shape[3];
  const dp = newTensorInfo(b, attrs.patchesShape);
  const db = newTensorInfo(b, [c]);
  // Σ dy per channel from the pass's partial sums: one more dispatch (strided-sums.ts), where a
  // column sum over the B·H·W pixel rows took one per level (four for a 224² batch of 128).
  const groups = gradGroups(b, n, c);
  const part = viewOf(b, scratchBuffer(b, "unpatchify-bias-partials", groups * c), 0, groups * c);
  const views = [viewOf(b, dy), viewOf(b, dp), part];
  encode(b, "SitUnpatchifyBiasGradSums", gradWgsl, views, uniforms(shape, attrs), [groups, 1, 1]);
  encodeStridedSums(b, [{ source: part, stride: c, count: groups, out: viewOf(b, db) }]);
  return [dp, db];
}

/** SitPatchify: `images [B, H, W, C]` → patches `[B, (H/p)·(W/p), p·p·C]`, one dispatch. */
function patchifyForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const shape = inputs.images.shape;
  const [batch, , , c] = shape;
  const p = attrs.patchSize;
  const out = newTensorInfo(b, [batch, attrs.gridH * attrs.gridW, p * p * c]);
  const n = tf.util.sizeFromShape(shape);
  const views = [inputs.images, out].map((t) => viewOf(b, t));
  encode(b, "SitUnpatchifyBiasGrad", () => wgsl(true), views, uniforms(shape, attrs), [
    gridWorkgroups(b, n, THREADS),
    1,
    1,
  ]);
  return out;
}

/** SitUnpatchify: patches → NHWC images (no bias), one dispatch. */
function unpatchifyForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const shape = imageShape(inputs.patches, attrs);
  const out = newTensorInfo(b, shape);
  const n = tf.util.sizeFromShape(shape);
  const views = [inputs.patches, out].map((t) => viewOf(b, t));
  encode(b, "SitUnpatchify", () => wgsl(false, false), views, uniforms(shape, attrs), [
    gridWorkgroups(b, n, THREADS),
    1,
    1,
  ]);
  return out;
}

let registered = false;

/** Register the kernels and the forward's gradient with tfjs (once). */
export function registerUnpatchifyBiasKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [UNPATCHIFY_BIAS_KERNEL, forward],
    [UNPATCHIFY_BIAS_GRAD_KERNEL, backward],
    [PATCHIFY_KERNEL, patchifyForward],
    [UNPATCHIFY_KERNEL, unpatchifyForward],
  ]);
  tf.registerGradient({
    kernelName: PATCHIFY_KERNEL,
    inputsToSave: [],
    gradFunc: (dy, _saved, attrs) => {
      const dx = tf.engine().runKernel(UNPATCHIFY_KERNEL, { patches: dy as tf.Tensor }, attrs);
      return { images: () => dx as tf.Tensor };
    },
  });
  tf.registerGradient({
    kernelName: UNPATCHIFY_KERNEL,
    inputsToSave: [],
    gradFunc: (dy, _saved, attrs) => {
      const dp = tf.engine().runKernel(PATCHIFY_KERNEL, { images: dy as tf.Tensor }, attrs);
      return { patches: () => dp as tf.Tensor };
    },
  });
  tf.registerGradient({
    kernelName: UNPATCHIFY_BIAS_KERNEL,
    inputsToSave: [],
    gradFunc: (dy, _saved, attrs) => {
      const [dp, db] = tf
        .engine()
        .runKernel(UNPATCHIFY_BIAS_GRAD_KERNEL, { dy: dy as tf.Tensor }, attrs) as tf.Tensor[];
      return { patches: () => dp, bias: () => db };
    },
  });
}

/**
 * `unpatchify(patches) + bias` on webgpu: `patches [B, gridH·gridW, p·p·C]`, `bias [C]` (checked
 * by the caller) → `[B, gridH·p, gridW·p, C]`. One dispatch forward; backward one for the patches
 * and two for the bias up to 32k pixels, one more per factor of 32 (four for 128 images of 224²).
 */
export function webgpuUnpatchifyBias(
  patches: tf.Tensor3D,
  patchSize: number,
  [gridH, gridW]: [number, number],
  bias: tf.Tensor1D,
): tf.Tensor4D {
  registerUnpatchifyBiasKernels();
  const attrs = { patchSize, gridH, gridW, patchesShape: patches.shape };
  return tf
    .engine()
    .runKernel(UNPATCHIFY_BIAS_KERNEL, { patches, bias }, attrs as never) as tf.Tensor4D;
}

/**
 * `patchify(images, patchSize)` on webgpu: `images [B, gridH·p, gridW·p, C]` (float32, checked by
 * the caller) → `[B, gridH·gridW, p·p·C]`. One dispatch each way (the gradient is the inverse
 * map), nothing saved for the tape.
 */
export function webgpuPatchify(images: tf.Tensor4D, patchSize: number): tf.Tensor3D {
  registerUnpatchifyBiasKernels();
  const [, h, w] = images.shape;
  const attrs = { patchSize, gridH: h / patchSize, gridW: w / patchSize };
  return tf.engine().runKernel(PATCHIFY_KERNEL, { images }, attrs as never) as tf.Tensor3D;
}
