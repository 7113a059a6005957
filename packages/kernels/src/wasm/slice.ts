import * as tf from "@tensorflow/tfjs";

interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

let original: tf.KernelConfig | undefined;

/**
 * The wasm backend's `Slice` reads its whole input into a fresh JavaScript array (`readSync`)
 * before copying the slice out: slicing a third off a 19 MB activation cost ≈ 250 ms in a SiT
 * step (allocation and garbage collection of the copy). For a contiguous slice of a numeric tensor
 * this kernel copies the slice from heap view to heap view; anything else goes to tfjs's kernel.
 */
function heapSlice(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs: tf.NamedAttrMap;
}): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const { begin, size } = args.attrs as unknown as { begin: number[]; size: number[] };
  const [begin_, size_] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  if (x.dtype === "string" || !tf.slice_util.isSliceContinous(x.shape, begin_, size_))
    return (original as tf.KernelConfig).kernelFunc(args as never) as tf.TensorInfo;
  const backend = args.backend as unknown as WasmHeapBackend;
  const out = backend.makeOutput(size_, x.dtype);
  const offset = tf.slice_util.computeFlatOffset(begin_, tf.util.computeStrides(x.shape));
  const n = size_.reduce((a, b) => a * b, 1);
  const src = backend.typedArrayFromHeap(x);
  backend.typedArrayFromHeap(out).set(src.subarray(offset, offset + n));
  return out;
}

/** Install (`true`) or remove (`false`, restoring tfjs's kernel) the heap-to-heap `Slice`. */
export function setHeapSlice(enabled: boolean): void {
  const current = tf.getKernel("Slice", "wasm");
  if (enabled && !original) {
    if (!current) return;
    original = current;
    tf.unregisterKernel("Slice", "wasm");
    tf.registerKernel({
      kernelName: "Slice",
      backendName: "wasm",
      kernelFunc: heapSlice as unknown as tf.KernelFunc,
    });
  } else if (!enabled && original) {
    tf.unregisterKernel("Slice", "wasm");
    tf.registerKernel(original);
    original = undefined;
  }
}
