import * as tf from "@tensorflow/tfjs";
import type { FlatAdamWKernel, FlatAdamWLayout, FlatAdamWStepArgs } from "@sit/core";
import {
  type WebGpuInternals,
  bufferOf,
  copyElements,
  dispatchAll,
  gridWorkgroups,
  markWritten,
  newTensorInfo,
  webgpuInternals,
} from "./flat-buffers";

// AdamW over every parameter of a model in ≤ 3 compute dispatches (WGSL, WebGPU backend):
//  1. per-tensor sums of squares, one workgroup per tensor (only when clipping), which also
//     turn into SiT's per-tensor clip factor c/(‖g‖ + 1e-6) when that is below 1;
//  2. the global-norm factor over those sums (one workgroup; only with clipGlobalNorm);
//  3. the update of parameters and moments held in flat buffers, each thread finding its tensor
//     (clip factor, group lr and weight decay) by binary search in the offsets table.
// Gradients are gathered into one flat buffer and the new parameters scattered into fresh
// buffers with copyBufferToBuffer commands on tfjs's encoder — no tfjs kernel per tensor.

/** tfjs kernel name of the fused step (registered for the webgpu backend). */
export const FLAT_ADAMW_KERNEL = "SitFlatAdamW";

const THREADS = 256;

// tbl (the plan's meta) = [offsets (T + 1) | group of each tensor (T)]; norms = [sum of squares (T) | factor (T)].
const SUMSQ_WGSL = /* wgsl */ `
struct U { numTensors: u32, clip: f32, pad0: u32, pad1: u32 };
@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read> tbl: array<u32>;
@group(0) @binding(2) var<storage, read_write> norms: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
var<workgroup> partial: array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = wid.x;
  let start = tbl[t];
  let end = tbl[t + 1u];
  var acc = 0.0;
  for (var i = start + lid; i < end; i = i + ${THREADS}u) {
    let g = grad[i];
    acc = acc + g * g;
  }
  partial[lid] = acc;
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
  }
}`;

const GLOBAL_WGSL = /* wgsl */ `
struct U { numTensors: u32, maxNorm: f32, pad0: u32, pad1: u32 };
@group(0) @binding(0) var<storage, read_write> norms: array<f32>;
@group(0) @binding(1) var<uniform> u: U;
var<workgroup> partial: array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_index) lid: u32) {
  let T = u.numTensors;
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
  for (var t = lid; t < T; t = t + ${THREADS}u) { norms[T + t] = norms[T + t] * coef; }
}`;

const UPDATE_WGSL = /* wgsl */ `
struct U {
  n: u32, numTensors: u32, useScale: u32, pad0: u32,
  beta1: f32, beta2: f32, oneMinusBeta1: f32, oneMinusBeta2: f32,
  eps: f32, bc2Sqrt: f32, pad1: f32, pad2: f32,
};
@group(0) @binding(0) var<storage, read> grad: array<f32>;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> norms: array<f32>;
@group(0) @binding(5) var<storage, read> tbl: array<u32>;
@group(0) @binding(6) var<storage, read> groupHyper: array<f32>;
@group(0) @binding(7) var<uniform> u: U;
@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let T = u.numTensors;
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
    if (u.useScale != 0u) { g = g * norms[T + lo]; }
    let grp = tbl[T + 1u + lo];
    let decay = groupHyper[2u * grp];
    let stepSize = groupHyper[2u * grp + 1u];
    let mi = u.beta1 * m[i] + u.oneMinusBeta1 * g;
    let vi = u.beta2 * v[i] + u.oneMinusBeta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - stepSize * mi / (sqrt(vi) / u.bc2Sqrt + u.eps);
  }
}`;

/** Static tables of one optimiser's layout, as backend tensors (not engine tensors). */
interface Plan {
  layout: FlatAdamWLayout;
  /** [offsets (T + 1) | group of each tensor (T)], int32. */
  meta: tf.TensorInfo;
  backend: WebGpuInternals;
}

interface StepAttrs {
  plan: Plan;
  stale: boolean[];
  numTensors: number;
  hyper: Omit<FlatAdamWStepArgs, "params" | "grads" | "flatParams" | "m" | "v" | "stale">;
}

function flatAdamWKernelFunc(args: {
  inputs: Record<string, tf.TensorInfo>;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo[] {
  const b = webgpuInternals(args.backend);
  const { plan, stale, numTensors: T, hyper: h } = args.attrs as StepAttrs;
  const { inputs } = args;
  const { offsets, numGroups } = plan.layout;
  const n = offsets[T];
  if (T === 0 || n === 0) return [];
  if (T > b.device.limits.maxComputeWorkgroupsPerDimension)
    throw new Error(`SitFlatAdamW: ${T} tensors exceed one workgroup per tensor`);
  if (plan.backend !== b) throw new Error("SitFlatAdamW: prepared on another backend");
  const metaBuf = bufferOf(b, plan.meta);
  const flatParams = bufferOf(b, inputs.flatParams);
  const m = bufferOf(b, inputs.m);
  const v = bufferOf(b, inputs.v);
  for (let i = 0; i < T; i++)
    if (stale[i])
      copyElements(
        b,
        bufferOf(b, inputs[`p${i}`]),
        0,
        flatParams,
        offsets[i],
        offsets[i + 1] - offsets[i],
      );
  const grad = newTensorInfo(b, [n]);
  const gradBuf = bufferOf(b, grad);
  for (let i = 0; i < T; i++)
    copyElements(
      b,
      bufferOf(b, inputs[`g${i}`]),
      0,
      gradBuf,
      offsets[i],
      offsets[i + 1] - offsets[i],
    );
  const norms = newTensorInfo(b, [2 * T]);
  const normsBuf = bufferOf(b, norms);
  const groupHyper = new Float32Array(2 * numGroups);
  h.groups.forEach((g, i) => {
    groupHyper[2 * i] = 1 - g.lr * g.weightDecay;
    groupHyper[2 * i + 1] = g.lr / (1 - h.beta1 ** h.step);
  });
  const hyperInfo = newTensorInfo(b, [groupHyper.length], groupHyper);
  const useScale = h.clipPerTensor !== null || h.clipGlobalNorm !== null;
  const dispatches = [];
  if (useScale) {
    dispatches.push({
      key: "SitFlatAdamW.sumsq",
      code: SUMSQ_WGSL,
      buffers: [gradBuf, metaBuf, normsBuf],
      uniforms: [
        { type: "uint32" as const, data: [T] },
        { type: "float32" as const, data: [h.clipPerTensor ?? 0] },
        { type: "uint32" as const, data: [0] },
        { type: "uint32" as const, data: [0] },
      ],
      workgroups: T,
    });
    if (h.clipGlobalNorm !== null)
      dispatches.push({
        key: "SitFlatAdamW.global",
        code: GLOBAL_WGSL,
        buffers: [normsBuf],
        uniforms: [
          { type: "uint32" as const, data: [T] },
          { type: "float32" as const, data: [h.clipGlobalNorm] },
          { type: "uint32" as const, data: [0] },
          { type: "uint32" as const, data: [0] },
        ],
        workgroups: 1,
      });
  }
  dispatches.push({
    key: "SitFlatAdamW.update",
    code: UPDATE_WGSL,
    buffers: [gradBuf, flatParams, m, v, normsBuf, metaBuf, bufferOf(b, hyperInfo)],
    uniforms: [
      { type: "uint32" as const, data: [n] },
      { type: "uint32" as const, data: [T] },
      { type: "uint32" as const, data: [useScale ? 1 : 0] },
      { type: "uint32" as const, data: [0] },
      { type: "float32" as const, data: [h.beta1] },
      { type: "float32" as const, data: [h.beta2] },
      { type: "float32" as const, data: [1 - h.beta1] },
      { type: "float32" as const, data: [1 - h.beta2] },
      { type: "float32" as const, data: [h.eps] },
      { type: "float32" as const, data: [Math.sqrt(1 - h.beta2 ** h.step)] },
      { type: "float32" as const, data: [0] },
      { type: "float32" as const, data: [0] },
    ],
    workgroups: gridWorkgroups(b, n, THREADS),
  });
  dispatchAll(b, dispatches);
  for (const t of [inputs.flatParams, inputs.m, inputs.v]) markWritten(b, t);
  const outputs: tf.TensorInfo[] = [];
  for (let i = 0; i < T; i++) {
    const out = newTensorInfo(b, [...inputs[`p${i}`].shape]);
    copyElements(b, flatParams, offsets[i], bufferOf(b, out), 0, offsets[i + 1] - offsets[i]);
    outputs.push(out);
  }
  // Released after the pending commands are submitted (they are marked as owned by them).
  for (const t of [grad, norms, hyperInfo]) b.disposeData(t.dataId);
  return outputs;
}

let registered = false;

/** Register the `SitFlatAdamW` tfjs kernel for webgpu (idempotent). */
export function registerFlatAdamWTfjsKernel(): void {
  if (registered || tf.getKernel(FLAT_ADAMW_KERNEL, "webgpu")) {
    registered = true;
    return;
  }
  tf.registerKernel({
    kernelName: FLAT_ADAMW_KERNEL,
    backendName: "webgpu",
    kernelFunc: flatAdamWKernelFunc as unknown as tf.KernelFunc,
  });
  registered = true;
}

/**
 * The WebGPU fused AdamW for @sit/core's `registerFlatAdamWKernel`: each step is one tfjs kernel
 * (`SitFlatAdamW`) of 1–3 compute dispatches plus buffer copies.
 */
export const webgpuFlatAdamW: FlatAdamWKernel = {
  prepare(layout: FlatAdamWLayout) {
    const T = layout.groupOf.length;
    const meta = new Int32Array(2 * T + 1);
    meta.set(layout.offsets);
    meta.set(layout.groupOf, T + 1);
    const backend = webgpuInternals(tf.backend());
    const plan: Plan = {
      layout,
      meta: backend.makeTensorInfo([meta.length], "int32", meta),
      backend,
    };
    let disposed = false;
    return {
      step(args: FlatAdamWStepArgs): tf.Tensor[] {
        registerFlatAdamWTfjsKernel();
        const inputs: Record<string, tf.Tensor> = {
          flatParams: args.flatParams,
          m: args.m,
          v: args.v,
        };
        args.params.forEach((p, i) => {
          inputs[`p${i}`] = p;
        });
        args.grads.forEach((g, i) => {
          inputs[`g${i}`] = g;
        });
        const { params, grads, flatParams, m, v, stale, ...hyper } = args;
        const attrs: StepAttrs = { plan, stale, numTensors: params.length, hyper };
        const out = tf.engine().runKernel(FLAT_ADAMW_KERNEL, inputs as never, attrs as never) as
          | tf.Tensor
          | tf.Tensor[];
        return Array.isArray(out) ? out : [out];
      },
      dispose(): void {
        if (!disposed) plan.backend.disposeData(plan.meta.dataId);
        disposed = true;
      },
    };
  },
};
