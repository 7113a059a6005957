import type * as tf from "@tensorflow/tfjs";
import type { FlatAdamWKernel, FlatAdamWLayout, FlatAdamWStepArgs } from "@sit/core";
import { WasmHeap } from "./heap";
import { flatKernels } from "./flat-kernels";

// AdamW over the whole model inside the wasm heap: gradients, parameters and both moments are
// read where tfjs keeps them, and nothing is copied to JavaScript. The moments are updated in
// place; each parameter's new value goes into a fresh heap buffer, returned for the optimiser to
// assign. Never into the parameter's own buffer: XNNPACK caches weights packed for its matrix
// products per tensor, so a weight changed under its tensor would be multiplied stale (and a
// buffer may be shared by other tensors). The element loops (flat-kernels.ts) round every
// operation to float32 as PyTorch's AdamW does; the clip factors are computed here as in
// @sit/core's host AdamW.

const FLOAT32_MAX = 3.4028234663852886e38;

/** Per-tensor clip factors times the global-norm factor (see @sit/core's host AdamW). */
function clipFactors(sumsOfSquares: Float64Array, args: FlatAdamWStepArgs): Float64Array {
  const n = sumsOfSquares.length;
  const factors = new Float64Array(n).fill(1);
  const { clipPerTensor, clipGlobalNorm } = args;
  if (clipPerTensor === null && clipGlobalNorm === null) return factors;
  let totalSq = 0;
  for (let i = 0; i < n; i++) {
    // PyTorch's float32 norm overflows to ∞ where float64 would not: the clip factor is then 0.
    const ss = sumsOfSquares[i] > FLOAT32_MAX ? Number.POSITIVE_INFINITY : sumsOfSquares[i];
    let f = 1;
    if (clipPerTensor !== null) f = Math.min(1, clipPerTensor / (Math.sqrt(ss) + 1e-6));
    factors[i] = f;
    if (f !== 0) totalSq += ss * f * f;
  }
  if (clipGlobalNorm !== null) {
    const coef = Math.min(1, clipGlobalNorm / (Math.sqrt(totalSq) + 1e-6));
    for (let i = 0; i < n; i++) factors[i] *= coef;
  }
  return factors;
}

function step(layout: FlatAdamWLayout, args: FlatAdamWStepArgs): tf.Tensor[] {
  const heap = WasmHeap.active();
  const { params, grads } = args;
  // Allocate every output before taking heap views: an allocation may grow the heap.
  const outs = params.map((p) => heap.fresh(p.shape));
  const kernels = flatKernels(heap);
  const sums = new Float64Array(params.length);
  for (let i = 0; i < params.length; i++)
    sums[i] = kernels.sumOfSquares(heap.offset(grads[i]), grads[i].size);
  const factors = clipFactors(sums, args);
  const m0 = heap.offset(args.m);
  const v0 = heap.offset(args.v);
  const bc1 = 1 - args.beta1 ** args.step;
  const bc2Sqrt = Math.sqrt(1 - args.beta2 ** args.step);
  for (let i = 0; i < params.length; i++) {
    const group = args.groups[layout.groupOf[i]];
    kernels.adamw({
      out: heap.offset(outs[i]),
      param: heap.offset(params[i]),
      grad: heap.offset(grads[i]),
      m: m0 + layout.offsets[i],
      v: v0 + layout.offsets[i],
      size: params[i].size,
      clip: factors[i],
      decay: 1 - group.lr * group.weightDecay,
      stepSize: group.lr / bc1,
      bc2Sqrt,
      beta1: args.beta1,
      beta2: args.beta2,
      eps: args.eps,
    });
  }
  return outs;
}

/** The fused AdamW of the wasm backend (plugged into @sit/core's AdamW by `setWasmKernels`). */
export const wasmFlatAdamW: FlatAdamWKernel = {
  readsParameters: true,
  prepare(layout) {
    return { step: (args) => step(layout, args), dispose() {} };
  },
};
