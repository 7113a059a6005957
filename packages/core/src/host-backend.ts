import * as tf from "@tensorflow/tfjs";

/**
 * Whether `backend` (default: the active one) keeps its tensors in host memory: `cpu` and `wasm`.
 * There, reading a tensor is free and a typed-array loop beats a chain of kernel launches, so
 * AdamW, the EMA teacher, GMML corruption and the augmentations take their host paths; on the
 * others (webgpu, tensorflow…) the data stays where it is and the work goes to it.
 */
export function isHostBackend(backend: string = tf.getBackend()): boolean {
  return backend === "cpu" || backend === "wasm";
}
