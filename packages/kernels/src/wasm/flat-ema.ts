import type * as tf from "@tensorflow/tfjs";
import type { FlatEmaKernel } from "@sit/core";
import { WasmHeap } from "./heap";
import { flatKernels } from "./flat-kernels";

/**
 * The EMA teacher update inside the wasm heap: `θ_t ← m·θ_t + (1 − m)·θ_s` written into the
 * teacher's own buffers, with no copy to JavaScript. A teacher tensor whose buffer is shared (an
 * EmaTeacher starts as `assign`ed views of the student's weights) is written into a private copy,
 * returned for assignment; the others are updated in place (`null`).
 */
export const wasmFlatEma: FlatEmaKernel = (teacher, student, momentum) => {
  const heap = WasmHeap.active();
  const outs: (tf.Tensor | null)[] = teacher.map((t) =>
    heap.owns(t) ? null : heap.fresh(t.shape),
  );
  const kernels = flatKernels(heap);
  for (let i = 0; i < teacher.length; i++) {
    const src = heap.offset(teacher[i]);
    kernels.ema(
      outs[i] ? heap.offset(outs[i] as tf.Tensor) : src,
      src,
      heap.offset(student[i]),
      teacher[i].size,
      momentum,
    );
  }
  return outs;
};
