import * as tf from "@tensorflow/tfjs";
import type {
  FlatAdamWKernel,
  FlatAdamWLayout,
  FlatAdamWStepArgs,
  FlatLossScaleArgs,
} from "@sit/core";
import { encode, viewOf } from "./encode";
import { indexedName } from "./indexed-names";
import {
  type WebGpuInternals,
  bufferOf,
  copyElements,
  gridWorkgroups,
  markWritten,
  ownBuffers,
  newTensorInfo,
  webgpuInternals,
} from "./flat-buffers";
import { bumpFlatVersion, noteMirror } from "./mirrors";
import { arenaGradients, deferWriteBack, flatRangeUsable, flushWriteBacks } from "./write-back";
import { GLOBAL_SCALED_WGSL, GLOBAL_WGSL, THREADS, sumsqWgsl, updateWgsl } from "./adamw-wgsl";

// AdamW over every parameter of a model in ≤ 3 compute dispatches (WGSL in adamw-wgsl.ts; encoded
// as encode.ts encodes, bind groups kept):
//  1. per-tensor sums of squares, one workgroup per tensor (only when clipping), which also
//     turn into SiT's per-tensor clip factor c/(‖g‖ + 1e-6) when that is below 1;
//  2. the global-norm factor over those sums (one workgroup; only with clipGlobalNorm);
//  3. the update of parameters and moments held in flat buffers, each thread finding its tensor
//     (clip factor, group lr and weight decay) by binary search in the offsets table.
// The gradients come in one flat buffer: the arena the block stack's backward wrote them into,
// with any others gathered into it, or all gathered (write-back.ts), with copyBufferToBuffer
// commands on tfjs's encoder — no tfjs kernel per tensor. The new parameters are copied back into
// their own buffers (fresh ones where a buffer is shared) only where their flat range cannot be
// bound; elsewhere the copy is deferred until something else reads them (write-back.ts).
// With a loss scale on the device (mixed precision) the same three passes also unscale, check for
// inf/NaN, skip and update the scale: no tfjs kernel per tensor and no read back for the scaler.

/** tfjs kernel name of the fused step (registered for the webgpu backend). */
export const FLAT_ADAMW_KERNEL = "SitFlatAdamW";

// Built once, at load (encode builds a pipeline from the text at its first use).
const SUMSQ = [sumsqWgsl(false), sumsqWgsl(true)];
const UPDATE = [updateWgsl(false), updateWgsl(true)];

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
  /** Parameters updated in their own buffers (no other tensor shares them). */
  inPlace: boolean[];
  numTensors: number;
  hyper: Omit<FlatAdamWStepArgs, "params" | "grads" | "flatParams" | "m" | "v" | "stale">;
}

function flatAdamWKernelFunc(args: {
  inputs: Record<string, tf.TensorInfo>;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo[] {
  const b = webgpuInternals(args.backend);
  const { plan, stale, inPlace, numTensors: T, hyper: h } = args.attrs as StepAttrs;
  const { inputs } = args;
  const { offsets, numGroups } = plan.layout;
  const n = offsets[T];
  if (T === 0 || n === 0) return [];
  if (T > b.device.limits.maxComputeWorkgroupsPerDimension)
    throw new Error(`SitFlatAdamW: ${T} tensors exceed one workgroup per tensor`);
  if (plan.backend !== b) throw new Error("SitFlatAdamW: prepared on another backend");
  const paramsV = viewOf(b, inputs.flatParams);
  const flatParams = paramsV.buffer;
  // The parameters that this step leaves deferred to their new range of flatParams (below); any
  // other tensor deferred to it gets its values now, before they are overwritten.
  const deferrable = (i: number) => inPlace[i] && flatRangeUsable(offsets[i]);
  // Each parameter and gradient looked up by name once (three loops below read the parameters).
  const params = Array.from({ length: T }, (_, i) => inputs[indexedName("p", i)]);
  const grads = Array.from({ length: T }, (_, i) => inputs[indexedName("g", i)]);
  const keep = new Set<object>();
  for (let i = 0; i < T; i++) if (deferrable(i)) keep.add(params[i].dataId);
  flushWriteBacks(inputs.flatParams, keep);
  for (let i = 0; i < T; i++)
    if (stale[i])
      copyElements(
        b,
        bufferOf(b, params[i]),
        0,
        flatParams,
        offsets[i],
        offsets[i + 1] - offsets[i],
      );
  // The gradients in one flat buffer: the arena the backward kernels wrote them into
  // (write-back.ts), or gathered here.
  const arena = arenaGradients(b, inputs.flatParams, grads, offsets);
  const grad = arena ?? newTensorInfo(b, [n]);
  if (!arena) {
    const gradBuf = bufferOf(b, grad);
    for (let i = 0; i < T; i++)
      copyElements(b, bufferOf(b, grads[i]), 0, gradBuf, offsets[i], offsets[i + 1] - offsets[i]);
  }
  const ls = h.lossScale;
  const norms = newTensorInfo(b, [ls ? 3 * T + 4 : 2 * T]);
  const groupHyper = flatAdamwStepValues(h);
  if (groupHyper.length !== 2 * numGroups + 1)
    throw new Error(`SitFlatAdamW: ${h.groups.length} groups for a plan of ${numGroups}`);
  const hyperInfo = newTensorInfo(b, [groupHyper.length], groupHyper);
  const scratch = arena ? [norms, hyperInfo] : [grad, norms, hyperInfo];
  const useScale = h.clipPerTensor !== null || h.clipGlobalNorm !== null;
  const [gradV, metaV, normsV] = [grad, plan.meta, norms].map((t) => viewOf(b, t));
  const state = ls ? viewOf(b, inputs.lossState) : null;
  if (useScale || state)
    encode(
      b,
      state ? "SitFlatAdamW.sumsq.scaled" : "SitFlatAdamW.sumsq",
      () => SUMSQ[state ? 1 : 0],
      state ? [gradV, metaV, normsV, state] : [gradV, metaV, normsV],
      [{ i: T }, { f: h.clipPerTensor ?? 0 }, { i: 0 }, { i: 0 }],
      [T, 1, 1],
    );
  if (ls && state)
    encode(
      b,
      "SitFlatAdamW.global.scaled",
      () => GLOBAL_SCALED_WGSL,
      [normsV, state, viewOf(b, inputs.lossScale)],
      [
        { i: T },
        { f: h.clipGlobalNorm ?? 0 },
        { f: ls.growthFactor },
        { f: ls.backoffFactor },
        { f: ls.growthInterval },
        { f: ls.knownSkips },
        { i: 0 },
        { i: 0 },
      ],
      [1, 1, 1],
    );
  else if (useScale && h.clipGlobalNorm !== null)
    encode(
      b,
      "SitFlatAdamW.global",
      () => GLOBAL_WGSL,
      [normsV],
      [{ i: T }, { f: h.clipGlobalNorm }, { i: 0 }, { i: 0 }],
      [1, 1, 1],
    );
  const [mV, vV, hyperV] = [inputs.m, inputs.v, hyperInfo].map((t) => viewOf(b, t));
  const updateViews = [gradV, paramsV, mV, vV, normsV, metaV, hyperV];
  let rows = 1;
  if (ls) {
    const table = biasCorrectionTable(h, ls.unresolved);
    rows = ls.unresolved + 1;
    const tableInfo = newTensorInfo(b, [table.length], table);
    scratch.push(tableInfo);
    updateViews.push(viewOf(b, tableInfo));
  }
  encode(
    b,
    ls ? "SitFlatAdamW.update.scaled" : "SitFlatAdamW.update",
    () => UPDATE[ls ? 1 : 0],
    updateViews,
    [
      { i: n },
      { i: T },
      { i: useScale ? 1 : 0 },
      { i: numGroups },
      { f: h.beta1 },
      { f: h.beta2 },
      { f: 1 - h.beta1 },
      { f: 1 - h.beta2 },
      { f: h.eps },
      { f: 0 },
      { i: rows },
      { f: 0 },
    ],
    [gridWorkgroups(b, n, THREADS), 1, 1],
  );
  for (const t of [inputs.flatParams, inputs.m, inputs.v]) markWritten(b, t);
  // Each parameter's new values go back into its own buffer where no other tensor shares it (the
  // same buffer every step: the kernels that read the weights keep their bind groups), else into
  // a fresh one the caller assigns (inPlace[i] false: one output each, in order). Each is then
  // a mirror of its range of flatParams (mirrors.ts), which the flat EMA reads instead of
  // gathering the student again, and which this package's kernels bind instead of its own
  // buffer: so where the range starts aligned, the copy into its own buffer waits until
  // something else reads that (write-back.ts).
  const outputs: tf.TensorInfo[] = [];
  const version = bumpFlatVersion(inputs.flatParams);
  for (let i = 0; i < T; i++) {
    const p = params[i];
    const size = offsets[i + 1] - offsets[i];
    if (inPlace[i]) {
      if (!deferrable(i)) copyElements(b, flatParams, offsets[i], bufferOf(b, p), 0, size);
      markWritten(b, p);
      noteMirror(p, inputs.flatParams, offsets[i], version);
      if (deferrable(i)) deferWriteBack(b, p, inputs.flatParams, offsets[i]);
      continue;
    }
    const out = newTensorInfo(b, [...p.shape]);
    copyElements(b, flatParams, offsets[i], bufferOf(b, out), 0, size);
    noteMirror(out, inputs.flatParams, offsets[i], version);
    outputs.push(out);
  }
  if (ls) {
    for (const t of [inputs.lossState, inputs.lossScale]) markWritten(b, t);
    // A copy of the scale state after this step, for the scaler's late read.
    const snapshot = newTensorInfo(b, [4]);
    copyElements(b, bufferOf(b, inputs.lossState), 0, bufferOf(b, snapshot), 0, 4);
    outputs.push(snapshot);
  }
  // Released after the pending commands are submitted (they are marked as owned by them).
  for (const t of scratch) b.disposeData(t.dataId);
  return outputs;
}

/**
 * Rows of [step size of each group, √(1 − β₂ᵉ)] for the effective steps e = step − j,
 * j = 0…`unresolved` (j = skips the device counted that the host has not read yet; row j is
 * what the update uses). Computed in f64 and rounded once, as the unscaled kernel's values.
 */
function biasCorrectionTable(h: StepAttrs["hyper"], unresolved: number): Float32Array {
  const G = h.groups.length;
  const table = new Float32Array((unresolved + 1) * (G + 1));
  for (let j = 0; j <= unresolved; j++) {
    // Rows below step 1 cannot be picked (each unread step skips at most once); keep them finite.
    const e = Math.max(1, h.step - j);
    h.groups.forEach((g, i) => {
      table[j * (G + 1) + i] = g.lr / (1 - h.beta1 ** e);
    });
    table[j * (G + 1) + G] = Math.sqrt(1 - h.beta2 ** e);
  }
  return table;
}

function checkLossScale(ls: FlatLossScaleArgs): void {
  const ok = (t: tf.Tensor, size: number) => t.dtype === "float32" && t.size === size;
  if (!ok(ls.state, 4) || !ok(ls.scale, 1))
    throw new Error(
      `SitFlatAdamW: lossScale.state must be float32 [4] and lossScale.scale float32 [1], got ${ls.state.dtype} [${ls.state.shape}] and ${ls.scale.dtype} [${ls.scale.shape}]`,
    );
  if (!(Number.isInteger(ls.unresolved) && ls.unresolved >= 0))
    throw new Error(
      `SitFlatAdamW: lossScale.unresolved must be a non-negative integer, got ${ls.unresolved}`,
    );
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
  lossScale: true,
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
      step(args: FlatAdamWStepArgs): (tf.Tensor | null)[] {
        registerFlatAdamWTfjsKernel();
        const inputs: Record<string, tf.Tensor> = {
          flatParams: args.flatParams,
          m: args.m,
          v: args.v,
        };
        args.params.forEach((p, i) => {
          inputs[indexedName("p", i)] = p;
        });
        args.grads.forEach((g, i) => {
          inputs[indexedName("g", i)] = g;
        });
        if (args.lossScale) {
          checkLossScale(args.lossScale);
          inputs.lossState = args.lossScale.state;
          inputs.lossScale = args.lossScale.scale;
        }
        const { params, grads, flatParams, m, v, stale, ...hyper } = args;
        const inPlace = ownBuffers(params);
        const attrs: StepAttrs = { plan, stale, inPlace, numTensors: params.length, hyper };
        const out = tf.engine().runKernel(FLAT_ADAMW_KERNEL, inputs as never, attrs as never) as
          | tf.Tensor
          | tf.Tensor[];
        const fresh = Array.isArray(out) ? out : [out];
        // null: updated in place; then the fresh parameters, then the loss scale's snapshot.
        let k = 0;
        const next: (tf.Tensor | null)[] = inPlace.map((own) => (own ? null : fresh[k++]));
        return [...next, ...fresh.slice(k)];
      },
      dispose(): void {
        if (!disposed) plan.backend.disposeData(plan.meta.dataId);
        disposed = true;
      },
    };
  },
};

/**
 * The values of one flat AdamW step that change every step, as the kernel uploads them: each
 * group's decay factor and step size, then √(1 − β₂ᵗ) (in a buffer, not the uniforms: the
 * dispatches keep their uniforms and bind groups, encode.ts). A captured step (step-capture.ts)
 * writes them for the step it replays.
 */
export function flatAdamwStepValues(h: {
  groups: readonly { lr: number; weightDecay: number }[];
  beta1: number;
  beta2: number;
  step: number;
}): Float32Array {
  const n = h.groups.length;
  const values = new Float32Array(2 * n + 1);
  h.groups.forEach((g, i) => {
    values[2 * i] = 1 - g.lr * g.weightDecay;
    values[2 * i + 1] = g.lr / (1 - h.beta1 ** h.step);
  });
  values[2 * n] = Math.sqrt(1 - h.beta2 ** h.step);
  return values;
}
