import type * as tf from "@tensorflow/tfjs";
import type { FlatAdamWKernel, FlatAdamWLayout, FlatAdamWStepArgs } from "@sit/core";
import { WasmHeap } from "./heap";
import { flatKernels } from "./flat-kernels";

// AdamW over the whole model inside the wasm heap: gradients, parameters and both moments are
// read and written where tfjs keeps them, so nothing is copied to JavaScript and no tensor is
// created per step. Parameters are updated in place when their buffer is private (`WasmHeap.owns`);
// a shared one (e.g. a teacher that still shares the student's initial weights) gets a private
// copy first, which is returned for the optimiser to assign. The element loops (flat-kernels.ts)
// round every operation to float32 as PyTorch's AdamW does; the clip factors are computed here as
// in @sit/core's host AdamW.

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
  // Allocate every private copy before taking heap views: an allocation may grow the heap.
  const replaced = params.map((p) => (heap.owns(p) ? null : heap.fresh(p.shape)));
  const kernels = flatKernels(heap);
  const H = heap.f32();
  replaced.forEach((c, i) => {
    if (!c) return;
    const src = heap.offset(params[i]);
    H.copyWithin(heap.offset(c), src, src + params[i].size);
  });
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
      param: heap.offset(replaced[i] ?? params[i]),
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
  return replaced;
}

/** The fused AdamW of the wasm backend (plugged into @sit/core's AdamW by `setWasmKernels`). */
export const wasmFlatAdamW: FlatAdamWKernel = {
  inPlace: true,
  prepare(layout) {
    return { step: (args) => step(layout, args), dispose() {} };
  },
};
