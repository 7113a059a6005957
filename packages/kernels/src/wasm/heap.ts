import * as tf from "@tensorflow/tfjs";

// Direct access to the wasm backend's heap, for the whole-model updates (AdamW, EMA) that read and
// write every parameter once per step: through tfjs, each would be a `dataSync` copy out of the
// heap and a `tf.tensor` copy back in (≈ 1.4 s of a 1.7 s SiT step at depth 1, batch 4). Relies
// on internals of @tensorflow/tfjs-backend-wasm 4.22 (`dataIdMap`, `makeOutput`, the module's memory
// and its tensor registry),
// the version the project pins; `wasmHeap` checks that they are there.

interface TensorData {
  id: number;
  memoryOffset: number;
  refCount: number;
}

interface WasmInternals {
  wasm: {
    HEAPU8: Uint8Array;
    tfjs: {
      registerTensor(id: number, size: number, memoryOffset: number): void;
      disposeData(id: number): void;
    };
    wasmMemory?: WebAssembly.Memory;
    asm?: { memory?: WebAssembly.Memory };
  };
  dataIdMap: { get(id: tf.DataId): TensorData | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/**
 * Tensors changed in place (`WasmHeap.changed`) since XNNPACK last multiplied by them: it has no
 * packed copy of these and would pack them anew (see `wasmLinear`'s few-rows product).
 */
const unpacked = new WeakSet<object>();

/** The active wasm backend's heap, seen as float32 elements. */
export class WasmHeap {
  private constructor(private readonly be: WasmInternals) {}

  /** The heap of the active backend; throws unless it is tfjs's wasm backend (4.22 internals). */
  static active(): WasmHeap {
    if (tf.getBackend() !== "wasm")
      throw new Error(
        `WasmHeap: expected the active tfjs backend to be wasm, got '${tf.getBackend()}'`,
      );
    return WasmHeap.of(tf.backend());
  }

  /** The heap of `backend` (a kernel's `backend` argument); throws unless it is tfjs's wasm backend. */
  static of(backend: unknown): WasmHeap {
    const be = backend as Partial<WasmInternals>;
    if (
      !be?.wasm?.HEAPU8 ||
      typeof be.dataIdMap?.get !== "function" ||
      typeof be.makeOutput !== "function" ||
      typeof be.wasm.tfjs?.registerTensor !== "function" ||
      typeof be.wasm.tfjs?.disposeData !== "function"
    )
      throw new Error("WasmHeap: expected tfjs's wasm backend (tfjs-backend-wasm 4.22 internals)");
    return new WasmHeap(be as WasmInternals);
  }

  /** A float32 view of the whole heap (taken anew each call: the heap may have grown). */
  f32(): Float32Array {
    return new Float32Array(this.be.wasm.HEAPU8.buffer);
  }

  /** The WebAssembly memory behind the heap (for modules that import it). */
  memory(): WebAssembly.Memory | undefined {
    return this.be.wasm.wasmMemory ?? this.be.wasm.asm?.memory;
  }

  private data(t: tf.TensorInfo): TensorData {
    const d = this.be.dataIdMap.get(t.dataId);
    if (!d || t.dtype !== "float32")
      throw new Error(
        `WasmHeap: expected a live float32 tensor of the wasm backend, got ${t.dtype} [${t.shape}]`,
      );
    return d;
  }

  /** Index of the tensor's first element in {@link WasmHeap.f32}. */
  offset(t: tf.TensorInfo): number {
    return this.data(t).memoryOffset >>> 2;
  }

  /**
   * True when no other tensor shares `t`'s buffer, so that it may be written in place (tfjs
   * tensors are immutable by contract: `assign`, `clone`, `reshape` and the sharing `Identity`
   * share buffers by reference count).
   */
  owns(t: tf.TensorInfo): boolean {
    return this.data(t).refCount === 1;
  }

  /**
   * Tell the backend's native side that `t`'s values changed in place: it forgets everything it
   * cached for the tensor (XNNPACK keeps weights packed for matrix products per tensor id, and
   * would go on multiplying the old values) by unregistering and re-registering the same buffer.
   */
  changed(t: tf.TensorInfo): void {
    const d = this.data(t);
    this.be.wasm.tfjs.disposeData(d.id);
    this.be.wasm.tfjs.registerTensor(d.id, tf.util.sizeFromShape(t.shape), d.memoryOffset);
    unpacked.add(t.dataId as object);
  }

  /** Whether `t` changed in place since {@link WasmHeap.packing} was last called for it. */
  unpacked(t: tf.TensorInfo): boolean {
    return unpacked.has(t.dataId as object);
  }

  /** Note that XNNPACK is about to multiply by `t` (and so to keep it packed). */
  packing(t: tf.TensorInfo): void {
    unpacked.delete(t.dataId as object);
  }

  /** A new float32 tensor of `shape` whose buffer is private to it (contents undefined). */
  fresh(shape: number[]): tf.Tensor {
    const info = this.be.makeOutput(shape, "float32");
    return tf.engine().makeTensorFromTensorInfo(info);
  }
}
