import * as tf from "@tensorflow/tfjs";

/**
 * The wasm backend's `Identity` copies its input into a new buffer. tfjs runs `Identity` for every
 * tensor it keeps for a backward pass (`save` in a custom gradient, and the inputs/outputs saved by
 * built-in gradients), so a training step copies hundreds of activations (≈ 750 copies per SiT
 * step at ViT-Tiny/4, batch 64). tfjs tensors are immutable, so the copy is not needed: this
 * kernel shares the input's buffer (a reference count, as `Reshape` on wasm and `Identity` on the
 * cpu backend do).
 */
function sharingIdentity(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
}): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  (args.backend as unknown as { incRef: (id: tf.DataId) => void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let original: tf.KernelConfig | undefined;

/** Install (`true`) or remove (`false`, restoring tfjs's copying kernel) the sharing `Identity`. */
export function setSharingIdentity(enabled: boolean): void {
  const current = tf.getKernel("Identity", "wasm");
  if (enabled && !original) {
    if (!current) return; // the wasm backend is not loaded: nothing to replace
    original = current;
    tf.unregisterKernel("Identity", "wasm");
    tf.registerKernel({
      kernelName: "Identity",
      backendName: "wasm",
      kernelFunc: sharingIdentity as unknown as tf.KernelFunc,
    });
  } else if (!enabled && original) {
    tf.unregisterKernel("Identity", "wasm");
    tf.registerKernel(original);
    original = undefined;
  }
}
