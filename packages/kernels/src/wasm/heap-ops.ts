import * as tf from "@tensorflow/tfjs";
import { flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";

/** tfjs kernel name of the heap column sum (registered for wasm by `setWasmKernels`). */
export const COLUMN_SUM_KERNEL = "SitColumnSum";

/**
 * Column sums `[M, n] → [n]` in one pass over the heap (flat-kernels.wat's `colsum`). Bias and
 * LayerNorm gradients need them a hundred times per SiT step; a `Sum` over axis 0 transposes its
 * input first, and the `ones[1, M] · x` product that replaced it makes XNNPACK pack all of x as
 * "weights" on every call (≈ 5 ms for a [2176, 96] gradient).
 */
function columnSumKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const [rows, cols] = x.shape;
  const backend = args.backend as { makeOutput(s: number[], d: tf.DataType): tf.TensorInfo };
  const out = backend.makeOutput([cols], "float32");
  const heap = WasmHeap.of(args.backend);
  flatKernels(heap).columnSum(heap.offset(out), heap.offset(x), rows, cols);
  return out;
}

let registered = false;

/** Register (`true`) or remove (`false`) the wasm column-sum kernel and its gradient. Idempotent. */
export function setHeapColumnSum(enabled: boolean): void {
  if (enabled && !registered) {
    tf.registerKernel({
      kernelName: COLUMN_SUM_KERNEL,
      backendName: "wasm",
      kernelFunc: columnSumKernel as unknown as tf.KernelFunc,
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
    tf.unregisterKernel(COLUMN_SUM_KERNEL, "wasm");
    registered = false;
  }
}

/** Whether {@link heapColumnSum} can run now (wasm active, kernel registered). */
export function heapColumnSumAvailable(): boolean {
  return registered && tf.getBackend() === "wasm";
}

/** Column sums of a float32 `x [M, n]` on the wasm heap (see {@link setHeapColumnSum}). */
export function heapColumnSum(x: tf.Tensor2D): tf.Tensor1D {
  return tf.engine().runKernel(COLUMN_SUM_KERNEL, { x }) as tf.Tensor1D;
}
