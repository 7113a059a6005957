import type * as tf from "@tensorflow/tfjs";
import type { FlatEmaKernel } from "@sit/core";
import { flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";

/**
 * The EMA teacher update inside the wasm heap: `θ_t ← m·θ_t + (1 − m)·θ_s` from the buffers where
 * tfjs keeps them, with no copy to JavaScript. A teacher tensor whose buffer no other tensor
 * shares is updated in place (and the backend told, for XNNPACK's packed-weight cache); a shared
 * one (an EmaTeacher starts as views of the student's weights) gets a fresh buffer, returned for
 * assignment (`null` marks the ones updated in place). See flat-adamw.ts for why in place.
 */
export const wasmFlatEma: FlatEmaKernel = (teacher, student, momentum) => {
  const heap = WasmHeap.active();
  const outs: (tf.Tensor | null)[] = teacher.map((t) =>
    heap.owns(t) ? null : heap.fresh(t.shape),
  );
  const kernels = flatKernels(heap);
  for (let i = 0; i < teacher.length; i++) {
    const src = heap.offset(teacher[i]);
    const out = outs[i];
    kernels.ema(
      out ? heap.offset(out) : src,
      src,
      heap.offset(student[i]),
      teacher[i].size,
      momentum,
    );
    if (!out) heap.changed(teacher[i]);
  }
  return outs;
};
