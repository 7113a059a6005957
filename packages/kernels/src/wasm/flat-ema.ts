import type * as tf from "@tensorflow/tfjs";
import type { FlatEmaKernel } from "@sit/core";
import { flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";

/**
 * The EMA teacher update inside the wasm heap: `θ_t ← m·θ_t + (1 − m)·θ_s` computed from the
 * buffers where tfjs keeps them, with no copy to JavaScript, into fresh buffers returned for
 * assignment (never the teacher's own: XNNPACK caches weights packed per tensor for the teacher's
 * products, and an EmaTeacher starts with buffers shared with the student).
 */
export const wasmFlatEma = ((teacher, student, momentum) => {
  const heap = WasmHeap.active();
  const outs: tf.Tensor[] = teacher.map((t) => heap.fresh(t.shape));
  const kernels = flatKernels(heap);
  for (let i = 0; i < teacher.length; i++)
    kernels.ema(
      heap.offset(outs[i]),
      heap.offset(teacher[i]),
      heap.offset(student[i]),
      teacher[i].size,
      momentum,
    );
  return outs;
}) satisfies FlatEmaKernel;
