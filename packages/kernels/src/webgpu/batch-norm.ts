import * as tf from "@tensorflow/tfjs";
import { type Scalars, encode, viewOf } from "./encode";
import { type WebGpuInternals, bufferOf, newTensorInfo, webgpuInternals } from "./flat-buffers";
import {
  BN_ACTIVATIONS,
  BN_COLUMNS,
  BN_ONE_DISPATCH_BINDINGS,
  type BatchNormVariant,
  type BnActivation,
  batchNormGradWgsl,
  batchNormKey,
  batchNormWgsl,
  runningWgsl,
} from "./batch-norm-wgsl";
import { registerWebgpuKernels } from "./program";
import { runKernelSaving } from "./tape";

// BatchNorm1d (training mode) + activation as tfjs kernels on webgpu: one dispatch forward, with
// the running statistics' update where the device allows 10 storage bindings (else one more
// dispatch for it; they come back as new tensors that the caller assigns to its buffers, so no
// tensor that shares a buffer with them is written in place), one backward
// (dX, dγ, dβ). Two forward kernel names, since tfjs's tape saves inputs by name and a norm
// without affine parameters has no γ to save.

export const BATCH_NORM_KERNEL = "SitBatchNorm";
export const BATCH_NORM_PLAIN_KERNEL = "SitBatchNormPlain";
export const BATCH_NORM_GRAD_KERNEL = "SitBatchNormGrad";

interface BnAttrs {
  activation: BnActivation;
  eps: number;
  /** PyTorch's momentum; −1 for `null` (cumulative average). */
  momentum: number;
  track: boolean;
}

/** Test hook: force the two-dispatch running update (what a device with 8 storage buffers gets). */
let oneDispatchAllowed = true;
export function allowOneDispatchBatchNorm(allowed: boolean): void {
  oneDispatchAllowed = allowed;
}

function variantOf(
  inputs: Record<string, tf.TensorInfo>,
  attrs: BnAttrs,
  b?: WebGpuInternals,
): BatchNormVariant {
  const v = { affine: !!inputs.gamma, activation: attrs.activation, track: attrs.track };
  // The forward blends the running statistics itself where the device takes its 10 bindings.
  const limit = b?.device.limits.maxStorageBuffersPerShaderStage ?? 0;
  const oneDispatch = oneDispatchAllowed && limit >= BN_ONE_DISPATCH_BINDINGS;
  return attrs.track && oneDispatch ? { ...v, oneDispatch } : v;
}

function uniforms(m: number, c: number, attrs: BnAttrs): Scalars[] {
  // 1 − momentum and M/(M − 1) in double precision, rounded once (as tfjs's scalar operands).
  const keep = attrs.momentum < 0 ? 0 : 1 - attrs.momentum;
  return [
    { i: m },
    { i: c },
    { f: attrs.eps },
    { f: attrs.momentum },
    { f: keep },
    { f: m / Math.max(1, m - 1) },
  ];
}

function int32Info(b: WebGpuInternals): tf.TensorInfo {
  const info = b.makeTensorInfo([], "int32");
  bufferOf(b, info);
  return info;
}

function forward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: BnAttrs;
  };
  const b = webgpuInternals(backend);
  const { x, gamma, beta, runningMean, runningVar, tracked } = inputs;
  const [m, c] = x.shape;
  const v = variantOf(inputs, attrs, b);
  const y = newTensorInfo(b, [m, c]);
  const outs = v.track ? [y, newTensorInfo(b, [c]), newTensorInfo(b, [c]), int32Info(b)] : [y];
  const affine = v.affine ? [x, gamma, beta] : [x];
  const reads = v.oneDispatch ? [...affine, runningMean, runningVar, tracked] : affine;
  const written = v.oneDispatch ? outs : outs.slice(0, 3);
  const u = uniforms(m, c, attrs);
  const views = (ts: tf.TensorInfo[]) => ts.map((t) => viewOf(b, t));
  const groups: [number, number, number] = [Math.ceil(c / BN_COLUMNS), 1, 1];
  encode(
    b,
    batchNormKey(v, false),
    () => batchNormWgsl(v),
    views([...reads, ...written]),
    u,
    groups,
  );
  if (v.track && !v.oneDispatch) {
    const running = views([runningMean, runningVar, tracked, ...outs.slice(1)]);
    encode(b, "SitBatchNormRunning", runningWgsl, running, u, groups);
  }
  return outs;
}

function backward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: BnAttrs;
  };
  const b = webgpuInternals(backend);
  const { dy, x, gamma, beta } = inputs;
  const [m, c] = x.shape;
  const v = variantOf(inputs, attrs);
  const dx = newTensorInfo(b, [m, c]);
  const outs = v.affine ? [dx, newTensorInfo(b, [c]), newTensorInfo(b, [c])] : [dx];
  const reads = v.affine ? [dy, x, gamma, beta] : [dy, x];
  encode(
    b,
    batchNormKey(v, true),
    () => batchNormGradWgsl(v),
    [...reads, ...outs].map((t) => viewOf(b, t)),
    uniforms(m, c, attrs),
    [Math.ceil(c / BN_COLUMNS), 1, 1],
  );
  return outs;
}

let registered = false;

/** Register the BatchNorm kernels and the forward's gradient with tfjs (once). */
export function registerBatchNormKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [BATCH_NORM_KERNEL, forward],
    [BATCH_NORM_PLAIN_KERNEL, forward],
    [BATCH_NORM_GRAD_KERNEL, backward],
  ]);
  const gradFunc = (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: unknown) => {
    const dy = Array.isArray(dys) ? dys[0] : dys;
    const [x, gamma, beta] = saved;
    const inputs: Record<string, tf.Tensor> = { dy, x };
    if (gamma) Object.assign(inputs, { gamma, beta });
    const [dx, dgamma, dbeta] = tf
      .engine()
      .runKernel(BATCH_NORM_GRAD_KERNEL, inputs, attrs as never) as tf.Tensor[];
    // The running statistics are bookkeeping: nothing flows back into them.
    const none = () => tf.zeros([x.shape[1] as number]);
    return {
      x: () => dx,
      ...(gamma ? { gamma: () => dgamma, beta: () => dbeta } : {}),
      runningMean: none,
      runningVar: none,
      tracked: () => tf.scalar(0, "int32"),
    };
  };
  // x (and γ, β) are saved by webgpuBatchNormAct without tape copies (tape.ts).
  tf.registerGradient({ kernelName: BATCH_NORM_KERNEL, gradFunc });
  tf.registerGradient({ kernelName: BATCH_NORM_PLAIN_KERNEL, gradFunc });
}

/** What {@link webgpuBatchNormAct} needs of a BatchNorm1d (core's module satisfies it). */
export interface BatchNormState {
  weight: tf.Tensor | null;
  bias: tf.Tensor | null;
  runningMean: tf.Variable | null;
  runningVar: tf.Variable | null;
  numBatchesTracked: tf.Variable | null;
  eps: number;
  momentum: number | null;
}

/**
 * `act(BatchNorm1d(x))` in training mode on webgpu for `x [M, C]` (M ≥ 2): normalised with the
 * batch's mean and biased variance, the running statistics (when `bn` tracks them) updated as
 * PyTorch does (unbiased variance, `momentum` or a cumulative average) and assigned to `bn`'s
 * buffers. One tfjs kernel forward (two dispatches with running statistics, else one), one
 * backward (one dispatch); differentiable in x, γ and β.
 */
export function webgpuBatchNormAct(
  x: tf.Tensor2D,
  bn: BatchNormState,
  activation: BnActivation,
): tf.Tensor2D {
  if (!(activation in BN_ACTIVATIONS))
    throw new Error(
      `webgpuBatchNormAct activation: expected none, relu or gelu, got ${activation}`,
    );
  registerBatchNormKernels();
  const track = !!(bn.runningMean && bn.runningVar && bn.numBatchesTracked);
  const attrs: BnAttrs = { activation, eps: bn.eps, momentum: bn.momentum ?? -1, track };
  const inputs: Record<string, tf.Tensor> = { x };
  if (bn.weight && bn.bias) Object.assign(inputs, { gamma: bn.weight, beta: bn.bias });
  if (track)
    Object.assign(inputs, {
      runningMean: bn.runningMean,
      runningVar: bn.runningVar,
      tracked: bn.numBatchesTracked,
    });
  const kernel = inputs.gamma ? BATCH_NORM_KERNEL : BATCH_NORM_PLAIN_KERNEL;
  const saved = inputs.gamma ? [x, inputs.gamma, inputs.beta] : [x];
  const outs = runKernelSaving(kernel, inputs, attrs, () => saved);
  if (track) {
    (bn.runningMean as tf.Variable).assign(outs[1]);
    (bn.runningVar as tf.Variable).assign(outs[2]);
    (bn.numBatchesTracked as tf.Variable).assign(outs[3]);
    tf.dispose(outs.slice(1));
  }
  return outs[0] as tf.Tensor2D;
}
