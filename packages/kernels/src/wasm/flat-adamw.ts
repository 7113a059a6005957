import type * as tf from "@tensorflow/tfjs";
import type { FlatAdamWKernel, FlatAdamWLayout, FlatAdamWStepArgs } from "@sit/core";
import { WasmHeap } from "./heap";
import { flatKernels } from "./flat-kernels";

// AdamW over the whole model inside the wasm heap: gradients, parameters and both moments are
// read and written where tfjs keeps them, so nothing is copied to JavaScript and nothing is
// allocated per step. A parameter whose buffer no other tensor shares (`WasmHeap.owns`) is
// updated in place, and the backend is told (`WasmHeap.changed`: XNNPACK caches weights packed
// per tensor); a shared one (an EmaTeacher starts with the student's buffers) gets its new values
// in a fresh buffer, returned for the optimiser to assign. Writing fresh buffers every step
// instead fragments the never-shrinking heap (+136 MB over 1,000 steps at 19 M parameters). The
// element loops (flat-kernels.ts) round every operation to float32 as PyTorch's AdamW does; the
// clip factors are computed here as in @sit/core's host AdamW.

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

function step(layout: FlatAdamWLayout, args: FlatAdamWStepArgs): (tf.Tensor | null)[] {
  const heap = WasmHeap.active();
  const { params, grads } = args;
  // Allocate every fresh output before taking heap views: an allocation may grow the heap.
  const outs = params.map((p) => (heap.owns(p) ? null : heap.fresh(p.shape)));
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
      out: heap.offset(outs[i] ?? params[i]),
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
    if (!outs[i]) heap.changed(params[i]);
  }
  return outs;
}

/** The fused AdamW of the wasm backend (plugged into @sit/core's AdamW by `setWasmKernels`). */
export const wasmFlatAdamW: FlatAdamWKernel = {
  inPlace: true,
  prepare(layout) {
    return { step: (args) => step(layout, args), dispose() {} };
  },
};
