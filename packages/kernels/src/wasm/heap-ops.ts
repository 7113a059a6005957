import * as tf from "@tensorflow/tfjs";
import { flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";

// tfjs kernels over the wasm heap (layer-kernels.wat): column sums, LayerNorm and exact GELU,
// forward and backward, each one pass instead of a chain of tfjs kernels (LayerNorm on wasm was eleven kernel
// calls forward and backward, each a pass over the activations plus tfjs's per-call cost).

/** tfjs kernel name of the heap column sum (registered for wasm by `setWasmKernels`). */
export const COLUMN_SUM_KERNEL = "SitColumnSum";
/** tfjs kernel names of the heap LayerNorm: forward → [y, x̂, rstd]; backward → [dx, dγ, dβ]. */
export const LAYER_NORM_FORWARD_KERNEL = "SitLayerNormForward";
export const LAYER_NORM_BACKWARD_KERNEL = "SitLayerNormBackward";
/** tfjs kernel names of the heap GELU: forward → [y, Φ(x)]; backward → dx. */
export const GELU_FORWARD_KERNEL = "SitGeluForward";
export const GELU_BACKWARD_KERNEL = "SitGeluBackward";
/** tfjs kernel names of the attention softmax: `softmax(scale·x)` over the last axis, and back. */
export const SOFTMAX_FORWARD_KERNEL = "SitSoftmaxForward";
export const SOFTMAX_BACKWARD_KERNEL = "SitSoftmaxBackward";

interface HeapBackend {
  makeOutput(s: number[], d: tf.DataType): tf.TensorInfo;
}

/**
 * Column sums `[M, n] → [n]` in one pass over the heap (layer-kernels.wat's `colsum`). Bias and
 * LayerNorm gradients need them a hundred times per SiT step; a `Sum` over axis 0 transposes its
 * input first, and the `ones[1, M] · x` product that replaced it makes XNNPACK pack all of x as
 * "weights" on every call (≈ 5 ms for a [2176, 96] gradient).
 */
function columnSumKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const [rows, cols] = x.shape;
  const out = (args.backend as HeapBackend).makeOutput([cols], "float32");
  const heap = WasmHeap.of(args.backend);
  flatKernels(heap).columnSum(heap.offset(out), heap.offset(x), rows, cols);
  return out;
}

function layerNormForwardKernel(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
}): tf.TensorInfo[] {
  const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, cols] = x.shape;
  const be = args.backend as HeapBackend;
  const [y, xhat, rstd] = [
    be.makeOutput([rows, cols], "float32"),
    be.makeOutput([rows, cols], "float32"),
    be.makeOutput([rows], "float32"),
  ];
  const heap = WasmHeap.of(args.backend);
  const at = (t: tf.TensorInfo) => heap.offset(t);
  flatKernels(heap).layerNormForward({
    ...{ y: at(y), xhat: at(xhat), rstd: at(rstd), x: at(x), gamma: at(gamma), beta: at(beta) },
    ...{ rows, cols, eps: (args.attrs as { eps: number }).eps },
  });
  return [y, xhat, rstd];
}

function layerNormBackwardKernel(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
}): tf.TensorInfo[] {
  const { dy, xhat, rstd, gamma } = args.inputs as Record<string, tf.TensorInfo>;
  const [rows, cols] = dy.shape;
  const be = args.backend as HeapBackend;
  const [dx, dgamma, dbeta] = [
    be.makeOutput([rows, cols], "float32"),
    be.makeOutput([cols], "float32"),
    be.makeOutput([cols], "float32"),
  ];
  const heap = WasmHeap.of(args.backend);
  const at = (t: tf.TensorInfo) => heap.offset(t);
  flatKernels(heap).layerNormBackward({
    ...{ dx: at(dx), dgamma: at(dgamma), dbeta: at(dbeta), dy: at(dy), xhat: at(xhat) },
    ...{ rstd: at(rstd), gamma: at(gamma), rows, cols },
  });
  return [dx, dgamma, dbeta];
}

function geluForwardKernel(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
}): tf.TensorInfo[] {
  const x = args.inputs.x as tf.TensorInfo;
  const be = args.backend as HeapBackend;
  const [y, cdf] = [be.makeOutput([...x.shape], "float32"), be.makeOutput([...x.shape], "float32")];
  const heap = WasmHeap.of(args.backend);
  simdGelu(heap).forward(
    heap.offset(y),
    heap.offset(cdf),
    heap.offset(x),
    tf.util.sizeFromShape(x.shape),
  );
  return [y, cdf];
}

function geluBackwardKernel(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
}): tf.TensorInfo {
  const { dy, x, cdf } = args.inputs as Record<string, tf.TensorInfo>;
  const dx = (args.backend as HeapBackend).makeOutput([...x.shape], "float32");
  const heap = WasmHeap.of(args.backend);
  const at = (t: tf.TensorInfo) => heap.offset(t);
  simdGelu(heap).backward(at(dx), at(dy), at(x), at(cdf), tf.util.sizeFromShape(x.shape));
  return dx;
}

function simdGelu(heap: WasmHeap): NonNullable<ReturnType<typeof flatKernels>["gelu"]> {
  const gelu = flatKernels(heap).gelu;
  if (!gelu) throw new Error(`${GELU_FORWARD_KERNEL}: this engine cannot run the SIMD module`);
  return gelu;
}

function softmaxForwardKernel(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
}): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const n = x.shape[x.shape.length - 1];
  const p = (args.backend as HeapBackend).makeOutput([...x.shape], "float32");
  const heap = WasmHeap.of(args.backend);
  const rows = tf.util.sizeFromShape(x.shape) / n;
  const { scale } = args.attrs as { scale: number };
  flatKernels(heap).softmax.forward(heap.offset(p), heap.offset(x), rows, n, scale);
  return p;
}

function softmaxBackwardKernel(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
}): tf.TensorInfo {
  const { dp, p } = args.inputs as Record<string, tf.TensorInfo>;
  const n = p.shape[p.shape.length - 1];
  const dx = (args.backend as HeapBackend).makeOutput([...p.shape], "float32");
  const heap = WasmHeap.of(args.backend);
  const at = (t: tf.TensorInfo) => heap.offset(t);
  const rows = tf.util.sizeFromShape(p.shape) / n;
  const { scale } = args.attrs as { scale: number };
  flatKernels(heap).softmax.backward(at(dx), at(dp), at(p), rows, n, scale);
  return dx;
}

const KERNELS: [string, unknown][] = [
  [SOFTMAX_FORWARD_KERNEL, softmaxForwardKernel],
  [SOFTMAX_BACKWARD_KERNEL, softmaxBackwardKernel],
  [GELU_FORWARD_KERNEL, geluForwardKernel],
  [GELU_BACKWARD_KERNEL, geluBackwardKernel],
  [COLUMN_SUM_KERNEL, columnSumKernel],
  [LAYER_NORM_FORWARD_KERNEL, layerNormForwardKernel],
  [LAYER_NORM_BACKWARD_KERNEL, layerNormBackwardKernel],
];

let registered = false;

/**
 * Register (`true`) or remove (`false`) the wasm heap kernels (column sum with its gradient,
 * LayerNorm forward and backward, whose gradient `wasmLayerNorm` declares). Idempotent.
 */
export function setHeapOps(enabled: boolean): void {
  if (enabled && !registered) {
    for (const [kernelName, kernelFunc] of KERNELS)
      tf.registerKernel({
        kernelName,
        backendName: "wasm",
        kernelFunc: kernelFunc as tf.KernelFunc,
      });
    if (!tf.getGradient(COLUMN_SUM_KERNEL))
      tf.registerGradient({
        kernelName: COLUMN_SUM_KERNEL,
        inputsToSave: ["x"],
        gradFunc: (dy, saved) => {
          const [x] = saved;
          // Every row receives the column's incoming gradient.
          return { x: () => tf.mul(tf.onesLike(x), dy as tf.Tensor) };
        },
      });
    registered = true;
  } else if (!enabled && registered) {
    for (const [kernelName] of KERNELS) tf.unregisterKernel(kernelName, "wasm");
    registered = false;
  }
}

/** Whether the heap kernels can run now (wasm active, kernels registered). */
export function heapOpsAvailable(): boolean {
  return registered && tf.getBackend() === "wasm";
}

/** Column sums of a float32 `x [M, n]` on the wasm heap (see {@link setHeapColumnSum}). */
export function heapColumnSum(x: tf.Tensor2D): tf.Tensor1D {
  return tf.engine().runKernel(COLUMN_SUM_KERNEL, { x }) as tf.Tensor1D;
}

/** LayerNorm forward on the heap: `[y, x̂, rstd]`. */
export function heapLayerNormForward(
  x: tf.Tensor2D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
): [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D] {
  return tf.engine().runKernel(LAYER_NORM_FORWARD_KERNEL, { x, gamma, beta }, { eps }) as never;
}

/** LayerNorm backward on the heap: `[dx, dγ, dβ]`. */
export function heapLayerNormBackward(
  dy: tf.Tensor2D,
  xhat: tf.Tensor2D,
  rstd: tf.Tensor1D,
  gamma: tf.Tensor1D,
): [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D] {
  return tf.engine().runKernel(LAYER_NORM_BACKWARD_KERNEL, { dy, xhat, rstd, gamma }) as never;
}

/** Whether the heap kernels can run now with the SIMD modules (not their JavaScript twins). */
export function heapSimdAvailable(): boolean {
  return heapOpsAvailable() && flatKernels(WasmHeap.active()).kind === "simd";
}

/** Whether the SIMD heap GELU can run now (heap kernels registered and the SIMD module usable). */
export function heapGeluAvailable(): boolean {
  return heapSimdAvailable();
}

/**
 * `softmax(scale·x)` over the last axis of a float32 `x`, on the heap (attention's scaled scores);
 * no gradient of its own: {@link heapSoftmaxBackward} is the backward that callers wire up.
 */
export function heapSoftmax<T extends tf.Tensor>(x: T, scale: number): T {
  return tf.engine().runKernel(SOFTMAX_FORWARD_KERNEL, { x }, { scale }) as T;
}

/** The gradient of {@link heapSoftmax} with respect to `x`: `scale·p ⊙ (dp − Σ dp·p)` per row. */
export function heapSoftmaxBackward<T extends tf.Tensor>(dp: T, p: T, scale: number): T {
  if (!tf.util.arraysEqual(dp.shape, p.shape))
    throw new Error(
      `heapSoftmaxBackward: expected dp of the probabilities' shape [${p.shape}], got [${dp.shape}]`,
    );
  return tf.engine().runKernel(SOFTMAX_BACKWARD_KERNEL, { dp, p }, { scale }) as T;
}

/** Exact GELU forward on the heap: `[y, Φ(x)]`. */
export function heapGeluForward(x: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return tf.engine().runKernel(GELU_FORWARD_KERNEL, { x }) as never;
}

/** Exact GELU backward on the heap: `dy·(Φ + x·φ(x))`. */
export function heapGeluBackward(dy: tf.Tensor, x: tf.Tensor, cdf: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(GELU_BACKWARD_KERNEL, { dy, x, cdf }) as tf.Tensor;
}
