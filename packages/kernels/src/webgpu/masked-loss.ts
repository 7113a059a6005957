import * as tf from "@tensorflow/tfjs";
import { type Scalars, encode, viewOf } from "./encode";
import { gridWorkgroups, newTensorInfo, webgpuInternals } from "./flat-buffers";
import { registerWebgpuKernels } from "./program";
import { runKernelSaving } from "./tape";

// The masked reconstruction loss `Σ e(p − t)·m / max(n, 1e-12)` (e = |·| or (·)², n = the mask's
// weight over every element, a per-pixel mask counting once per channel) as one tfjs kernel each
// way on webgpu: forward, per-workgroup partial sums of e·m and m over a grid-stride loop, then one
// workgroup adds them (two dispatches; the denominator is a second output, saved for the
// backward); backward, `dp = slope(p − t)·m·(dy / n)` elementwise (one dispatch). It plugs into
// @sit/losses through @sit/core's `registerMaskedLossKernel` (heads-register.ts).

export const MASKED_LOSS_KERNEL = "SitMaskedLoss";
export const MASKED_LOSS_GRAD_KERNEL = "SitMaskedLossGrad";

const THREADS = 256;
/** Workgroups of the partial sums (each a grid-stride loop); the finishing pass adds them. */
const MAX_PARTIALS = 256;

interface MaskedAttrs {
  type: "l1" | "l2";
}

const UNIFORMS = "struct U { n : i32, C : i32, perPixel : i32, groups : i32 };";

// Inputs read-only (pred and target may be one tensor: read-only bindings may alias, writable ones
// may not); outputs are always new buffers.
function decl(names: string[]): string {
  const access = (n: string) => (n === "Part" || n === "DP" ? "read_write" : "read");
  return `${UNIFORMS}
${names.map((n, i) => `@group(0) @binding(${i}) var<storage, ${access(n)}> ${n} : array<f32>;`).join("\n")}
@group(0) @binding(${names.length}) var<uniform> u : U;
fn maskAt(e : i32) -> f32 { return Mk[select(e, e / u.C, u.perPixel == 1)]; }`;
}

function partialsWgsl(type: "l1" | "l2"): string {
  const err = type === "l1" ? "abs(d)" : "d * d";
  return `${decl(["P", "T", "Mk", "Part"])}
var<workgroup> ra : array<f32, ${THREADS}>;
var<workgroup> rb : array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(local_invocation_id) lid : vec3<u32>, @builtin(workgroup_id) wid : vec3<u32>) {
  let tid = i32(lid.x);
  let g = i32(wid.x);
  var se = 0.0;
  var sm = 0.0;
  for (var e = g * ${THREADS} + tid; e < u.n; e += u.groups * ${THREADS}) {
    let m = maskAt(e);
    let d = P[e] - T[e];
    se += ${err} * m;
    sm += m;
  }
  ra[tid] = se;
  rb[tid] = sm;
  workgroupBarrier();
  for (var s = ${THREADS / 2}; s > 0; s = s >> 1) {
    if (tid < s) { ra[tid] += ra[tid + s]; rb[tid] += rb[tid + s]; }
    workgroupBarrier();
  }
  if (tid == 0) { Part[2 * g] = ra[0]; Part[2 * g + 1] = rb[0]; }
}`;
}

function finishWgsl(): string {
  return `${UNIFORMS}
@group(0) @binding(0) var<storage, read> Part : array<f32>;
@group(0) @binding(1) var<storage, read_write> L : array<f32>;
@group(0) @binding(2) var<storage, read_write> Den : array<f32>;
@group(0) @binding(3) var<uniform> u : U;
var<workgroup> ra : array<f32, ${THREADS}>;
var<workgroup> rb : array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(local_invocation_id) lid : vec3<u32>) {
  let tid = i32(lid.x);
  var se = 0.0;
  var sm = 0.0;
  for (var g = tid; g < u.groups; g += ${THREADS}) { se += Part[2 * g]; sm += Part[2 * g + 1]; }
  ra[tid] = se;
  rb[tid] = sm;
  workgroupBarrier();
  for (var s = ${THREADS / 2}; s > 0; s = s >> 1) {
    if (tid < s) { ra[tid] += ra[tid + s]; rb[tid] += rb[tid + s]; }
    workgroupBarrier();
  }
  if (tid == 0) {
    // An empty mask gives 0 / 1e-12 = 0, as the portable loss.
    let den = max(rb[0], 1e-12);
    L[0] = ra[0] / den;
    Den[0] = den;
  }
}`;
}

function gradWgsl(type: "l1" | "l2"): string {
  const slope = type === "l1" ? "sign(d)" : "d * 2.0";
  return `${decl(["P", "T", "Mk", "DY", "Den", "DP"])}
@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  let scale = DY[0] / Den[0];
  for (var e = i32(gid.x); e < u.n; e += i32(nwg.x) * ${THREADS}) {
    let d = P[e] - T[e];
    DP[e] = ${slope} * (maskAt(e) * scale);
  }
}`;
}

type Args = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: MaskedAttrs };

function uniforms(pred: tf.TensorInfo, mask: tf.TensorInfo, groups: number): Scalars[] {
  const c = pred.shape[3];
  return [
    { i: tf.util.sizeFromShape(pred.shape) },
    { i: c },
    { i: mask.shape[3] === 1 && c !== 1 ? 1 : 0 },
    { i: groups },
  ];
}

function forward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const { pred, target, mask } = inputs;
  const n = tf.util.sizeFromShape(pred.shape);
  const groups = Math.min(MAX_PARTIALS, gridWorkgroups(b, n, THREADS));
  const u = uniforms(pred, mask, groups);
  const part = newTensorInfo(b, [2 * groups]);
  const loss = newTensorInfo(b, []);
  const den = newTensorInfo(b, []);
  const views = [pred, target, mask, part].map((t) => viewOf(b, t));
  encode(b, `SitMaskedLossParts_${attrs.type}`, () => partialsWgsl(attrs.type), views, u, [
    groups,
    1,
    1,
  ]);
  const fin = [part, loss, den].map((t) => viewOf(b, t));
  encode(b, "SitMaskedLossFinish", finishWgsl, fin, u, [1, 1, 1]);
  b.disposeData(part.dataId);
  return [loss, den];
}

function backward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const { pred, target, mask, dy, den } = inputs;
  const dp = newTensorInfo(b, pred.shape);
  const groups = gridWorkgroups(b, tf.util.sizeFromShape(pred.shape), THREADS);
  const views = [pred, target, mask, dy, den, dp].map((t) => viewOf(b, t));
  encode(
    b,
    `SitMaskedLossGrad_${attrs.type}`,
    () => gradWgsl(attrs.type),
    views,
    uniforms(pred, mask, groups),
    [groups, 1, 1],
  );
  return dp;
}

let registered = false;

/** Register the masked-loss kernels and the forward's gradient with tfjs (once). */
export function registerMaskedLossKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [MASKED_LOSS_KERNEL, forward],
    [MASKED_LOSS_GRAD_KERNEL, backward],
  ]);
  tf.registerGradient({
    kernelName: MASKED_LOSS_KERNEL,
    // pred, target, mask and the denominator are saved by webgpuMaskedLoss without tape copies.
    gradFunc: (dys, saved, attrs) => {
      const dy = Array.isArray(dys) ? dys[0] : dys;
      const [pred, target, mask, den] = saved;
      const inputs = { pred, target, mask, dy, den };
      const dp = tf
        .engine()
        .runKernel(MASKED_LOSS_GRAD_KERNEL, inputs, attrs as never) as tf.Tensor;
      return { pred: () => dp, target: () => tf.neg(dp), mask: () => tf.zerosLike(mask) };
    },
  });
}

/**
 * The masked reconstruction loss on webgpu (@sit/core's `MaskedLossKernel`): `pred`, `target`
 * `[B, H, W, C]`, float32 `mask` `[B, H, W, 1]` or `[B, H, W, C]`, checked by the caller. One tfjs
 * kernel of two dispatches forward, one of one dispatch backward.
 */
export function webgpuMaskedLoss(
  pred: tf.Tensor4D,
  target: tf.Tensor4D,
  mask: tf.Tensor4D,
  type: "l1" | "l2",
): tf.Scalar {
  registerMaskedLossKernels();
  const attrs: MaskedAttrs = { type };
  const inputs = { pred, target, mask };
  const [loss, den] = runKernelSaving(MASKED_LOSS_KERNEL, inputs, attrs, (outs) => [
    pred,
    target,
    mask,
    outs[1],
  ]);
  den.dispose();
  return loss as tf.Scalar;
}
