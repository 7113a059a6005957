import * as tf from "@tensorflow/tfjs";

// tfjs's tape keeps what a kernel's gradient needs (its `inputsToSave` / `outputsToSave`) by running
// an Identity kernel per tensor: a tfjs kernel call each, every training step (on webgpu the
// Identity only adds a reference to the same buffer). The fused kernels register gradients that
// save nothing and put those handles into their tape node's saved list themselves, without the
// kernel calls; tfjs disposes them with the node's other saved tensors once the backward pass is
// done, and hands them to the gradient as `saved`. (Unlike tfjs's copies they are not on the tape
// themselves: a gradient of the gradient would not flow through them. Nothing here takes one; the
// recomputed blocks' nested tf.grads record their own nodes.) Relies on tfjs 4.22's engine: the
// node of a kernel run with the tape on is the last one on `state.activeTape` when runKernel
// returns, and its `saved` array is the one the gradient function receives.

interface TapeNode {
  kernelName: string;
  outputs: tf.Tensor[];
  saved: tf.Tensor[];
}

interface EngineInternals {
  isTapeOn(): boolean;
  runKernel(name: string, inputs: object, attrs?: object): tf.Tensor | tf.Tensor[];
  state: { activeTape: TapeNode[] | null };
}

/** Another tensor on `t`'s buffer (reference-counted by the backend; no kernel call). */
export function share(t: tf.Tensor): tf.Tensor {
  (tf.backend() as unknown as { incRef(dataId: object): void }).incRef(t.dataId);
  return tf.engine().makeTensorFromTensorInfo({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
}

/**
 * `tf.engine().runKernel(kernelName, inputs, attrs)` whose gradient receives, as its saved
 * tensors, handles on the tensors `save(outputs)` picks (inputs or outputs, in order), with no
 * tape copies. The kernel's registered gradient must save nothing itself.
 */
export function runKernelSaving(
  kernelName: string,
  inputs: Record<string, tf.Tensor>,
  attrs: object,
  save: (outputs: tf.Tensor[]) => tf.Tensor[],
): tf.Tensor[] {
  const engine = tf.engine() as unknown as EngineInternals;
  const taped = engine.isTapeOn();
  const result = engine.runKernel(kernelName, inputs, attrs);
  const outputs = Array.isArray(result) ? result : [result];
  if (taped) {
    const tape = engine.state.activeTape;
    const node = tape?.[tape.length - 1];
    if (!node || node.kernelName !== kernelName || node.outputs[0] !== outputs[0])
      throw new Error(
        `runKernelSaving: the tape node of ${kernelName} is not the tape's last (tfjs's engine changed?)`,
      );
    for (const t of save(outputs)) node.saved.push(tf.keep(share(t)));
  }
  return outputs;
}
