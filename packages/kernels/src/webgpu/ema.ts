import * as tf from "@tensorflow/tfjs";
import type { FlatEmaKernel, FlatSkipFlag } from "@sit/core";
import { encode, viewOf } from "./encode";
import { indexedName } from "./indexed-names";
import {
  type WebGpuInternals,
  bufferOf,
  copyElements,
  gridWorkgroups,
  markWritten,
  ownBuffers,
  newTensorInfo,
  webgpuInternals,
} from "./flat-buffers";
import { bumpFlatVersion, commonMirror, noteMirror } from "./mirrors";
import { deferWriteBack, flushWriteBacks, flatRangeUsable } from "./write-back";

/** Whether a teacher tensor's write-back may wait (write-back.ts): updated in place, aligned. */
const deferrable = (inPlace: boolean, offset: number) => inPlace && flatRangeUsable(offset);

// The EMA teacher update of a whole network in one compute dispatch (encoded as encode.ts encodes:
// bind group kept): teacher and student parameters in two flat buffers (the optimiser's own and a
// persistent teacher where they mirror the tensors, else gathered with copyBufferToBuffer:
// flatOperands), combined, and written back into each teacher parameter's own buffer where no
// other tensor shares it (tfjs's reference count is 1): at once where its flat range cannot be
// bound, else when something other than this package's kernels reads it (write-back.ts). The
// same buffers every step keep the bind groups of every kernel that reads the teacher's weights,
// as the flat AdamW does for the student's. A shared buffer (a teacher starts as `assign`ed copies
// of the student's data) is never written: that parameter gets a fresh one.

/** tfjs kernel name of the fused EMA (registered for the webgpu backend). */
export const FLAT_EMA_KERNEL = "SitFlatEma";

const THREADS = 256;

/**
 * The update shader; with `skip`, it reads a skip flag on the device (a loss scaler's found-inf):
 * a skipped optimiser step leaves the student as it was, and PyTorch's GradScaler runs no EMA
 * update after it either.
 */
function emaWgsl(skip: boolean): string {
  return /* wgsl */ `
struct U { n: u32, ${skip ? "flagIndex" : "pad"}: u32, pad1: u32, pad2: u32 };
@group(0) @binding(0) var<storage, read_write> teacher: array<f32>;
@group(0) @binding(1) var<storage, read> student: array<f32>;
@group(0) @binding(2) var<storage, read> coef: array<f32>;
${skip ? "@group(0) @binding(3) var<storage, read> flags: array<f32>;\n@group(0) @binding(4)" : "@group(0) @binding(3)"} var<uniform> u: U;
@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  ${skip ? "if (flags[u.flagIndex] != 0.0) { return; }" : ""}
  let a = coef[0];
  let b = coef[1];
  let stride = nwg.x * ${THREADS}u;
  for (var i = gid.x; i < u.n; i = i + stride) {
    // Two rounded products, then the sum, as PyTorch's mul_(m).add_((1 - m) * student).
    let t = teacher[i] * a;
    let s = student[i] * b;
    teacher[i] = t + s;
  }
}`;
}

const EMA_WGSL = emaWgsl(false);
const EMA_SKIP_WGSL = emaWgsl(true);

/**
 * The persistent flat teacher of each student flat buffer (mirrors.ts), per backend: laid out as
 * the student's flat buffer, so that one element-wise pass updates it; freed once that buffer is
 * gone (checked at each update).
 */
const flatTeachers = new WeakMap<object, Map<object, tf.TensorInfo>>();

function flatTeacherFor(b: WebGpuInternals, studentFlat: tf.TensorInfo): tf.TensorInfo {
  let byStudent = flatTeachers.get(b);
  if (!byStudent) {
    byStudent = new Map();
    flatTeachers.set(b, byStudent);
  }
  for (const [id, t] of byStudent)
    if (!b.tensorMap.has(id)) {
      b.disposeData(t.dataId);
      byStudent.delete(id);
    }
  let t = byStudent.get(studentFlat.dataId);
  if (!t) {
    t = newTensorInfo(b, [...studentFlat.shape]);
    byStudent.set(studentFlat.dataId, t);
  }
  return t;
}

/**
 * Where the update reads and writes: flat teacher and student buffers, each tensor's offset in
 * them, and whether they are temporaries (freed after the update, no mirrors noted). When the student is the flat AdamW's mirror (its parameters as
 * the optimiser scattered them, unwritten since: mirrors.ts), the update reads the optimiser's
 * flat buffer and keeps a persistent flat teacher laid out alike, gathered only when the teacher
 * tensors are not its mirrors (the first update, a restored checkpoint): a SiT step then records
 * one copy per teacher tensor (the scatter) instead of three. Else both are gathered into
 * temporaries.
 */
function flatOperands(
  b: WebGpuInternals,
  teacher: tf.TensorInfo[],
  student: tf.TensorInfo[],
  sizes: number[],
  inPlace: boolean[],
): { t: tf.TensorInfo; s: tf.TensorInfo; offsets: number[]; temporary: boolean } {
  const studentFlat = commonMirror(b, student);
  // (Each tensor needs a range of its own: the same student tensor twice would share one.)
  if (studentFlat && new Set(studentFlat.offsets).size === student.length) {
    const t = flatTeacherFor(b, studentFlat.flat);
    const { offsets } = studentFlat;
    // Tensors deferred to the flat teacher (write-back.ts) that this update does not re-note get
    // their values before the gather or the update overwrites them.
    const keep = new Set<object>();
    teacher.forEach((x, i) => {
      if (deferrable(inPlace[i], offsets[i])) keep.add(x.dataId);
    });
    flushWriteBacks(t, keep);
    const held = commonMirror(b, teacher);
    const current =
      held?.flat.dataId === t.dataId && held.offsets.every((o, i) => o === offsets[i]);
    if (!current) {
      const tBuf = bufferOf(b, t);
      teacher.forEach((x, i) => {
        copyElements(b, bufferOf(b, x), 0, tBuf, offsets[i], sizes[i]);
      });
    }
    return { t, s: studentFlat.flat, offsets, temporary: false };
  }
  const offsets: number[] = [];
  let n = 0;
  for (const size of sizes) {
    offsets.push(n);
    n += size;
  }
  const t = newTensorInfo(b, [n]);
  const s = newTensorInfo(b, [n]);
  const [tBuf, sBuf] = [bufferOf(b, t), bufferOf(b, s)];
  teacher.forEach((x, i) => {
    copyElements(b, bufferOf(b, x), 0, tBuf, offsets[i], sizes[i]);
    copyElements(b, bufferOf(b, student[i]), 0, sBuf, offsets[i], sizes[i]);
  });
  return { t, s, offsets, temporary: true };
}

function flatEmaKernelFunc(args: {
  inputs: Record<string, tf.TensorInfo>;
  backend: unknown;
  attrs: unknown;
}): tf.TensorInfo[] {
  const b = webgpuInternals(args.backend);
  const { count, momentum, skipIndex, inPlace } = args.attrs as {
    count: number;
    momentum: number;
    skipIndex: number;
    inPlace: boolean[];
  };
  const { inputs } = args;
  const teacherInputs: tf.TensorInfo[] = [];
  const studentInputs: tf.TensorInfo[] = [];
  for (let i = 0; i < count; i++) {
    teacherInputs.push(inputs[indexedName("t", i)]);
    studentInputs.push(inputs[indexedName("s", i)]);
  }
  const sizes = teacherInputs.map((t) => tf.util.sizeFromShape(t.shape));
  if (sizes.every((size) => size === 0)) return [];
  const {
    t: teacher,
    s: student,
    offsets,
    temporary,
  } = flatOperands(b, teacherInputs, studentInputs, sizes, inPlace);
  const n = tf.util.sizeFromShape(teacher.shape);
  const tBuf = bufferOf(b, teacher);
  const skip = skipIndex >= 0;
  const coef = newTensorInfo(b, [2], flatEmaStepValues(momentum));
  const views = [viewOf(b, teacher), viewOf(b, student), viewOf(b, coef)];
  if (skip) views.push(viewOf(b, inputs.skip));
  encode(
    b,
    skip ? "SitFlatEma.skip" : "SitFlatEma",
    () => (skip ? EMA_SKIP_WGSL : EMA_WGSL),
    views,
    [{ i: n }, { i: skip ? skipIndex : 0 }, { i: 0 }, { i: 0 }],
    [gridWorkgroups(b, n, THREADS), 1, 1],
  );
  b.disposeData(coef.dataId);
  // In place where unshared; else one fresh output each, in order. Each is then a mirror of its
  // range of a persistent flat teacher, and the in-place ones at an aligned range wait for their
  // copy until something reads their own buffers (write-back.ts), as the flat AdamW's do.
  const version = temporary ? 0 : bumpFlatVersion(teacher);
  const outputs: tf.TensorInfo[] = [];
  teacherInputs.forEach((t, i) => {
    let out = t;
    if (inPlace[i]) {
      const defer = !temporary && deferrable(true, offsets[i]);
      if (!defer) copyElements(b, tBuf, offsets[i], bufferOf(b, t), 0, sizes[i]);
      markWritten(b, t);
      if (defer) {
        noteMirror(t, teacher, offsets[i], version);
        deferWriteBack(b, t, teacher, offsets[i]);
        return;
      }
    } else {
      out = newTensorInfo(b, [...t.shape]);
      copyElements(b, tBuf, offsets[i], bufferOf(b, out), 0, sizes[i]);
      outputs.push(out);
    }
    if (!temporary) noteMirror(out, teacher, offsets[i], version);
  });
  if (temporary) {
    b.disposeData(teacher.dataId);
    b.disposeData(student.dataId);
  }
  return outputs;
}

/** Register the `SitFlatEma` tfjs kernel for webgpu (idempotent). */
export function registerFlatEmaTfjsKernel(): void {
  if (tf.getKernel(FLAT_EMA_KERNEL, "webgpu")) return;
  tf.registerKernel({
    kernelName: FLAT_EMA_KERNEL,
    backendName: "webgpu",
    kernelFunc: flatEmaKernelFunc as unknown as tf.KernelFunc,
  });
}

/**
 * The WebGPU fused EMA for @sit/core's `registerFlatEmaKernel`: one tfjs kernel (`SitFlatEma`),
 * one compute dispatch plus buffer copies, whatever the number of tensors. Returns, per teacher
 * tensor, null where its own buffer was updated in place (no other tensor shares it), else the
 * new tensor for the caller to assign.
 */
export const webgpuFlatEma = Object.assign(
  (teacher: tf.Tensor[], student: tf.Tensor[], momentum: number, skip?: FlatSkipFlag) => {
    if (teacher.length !== student.length)
      throw new Error(
        `SitFlatEma: ${teacher.length} teacher tensors but ${student.length} student tensors`,
      );
    // Nothing to update (no tensors, or only empty ones): as if in place.
    if (teacher.every((t) => t.size === 0)) return teacher.map(() => null);
    registerFlatEmaTfjsKernel();
    const inputs: Record<string, tf.Tensor> = {};
    teacher.forEach((t, i) => {
      inputs[indexedName("t", i)] = t;
      inputs[indexedName("s", i)] = student[i];
    });
    if (skip) {
      if (!(skip.index >= 0 && skip.index < skip.tensor.size && skip.tensor.dtype === "float32"))
        throw new Error(
          `SitFlatEma: skip flag index ${skip.index} outside a float32 tensor of ${skip.tensor.size} values`,
        );
      inputs.skip = skip.tensor;
    }
    const inPlace = ownBuffers(teacher);
    const attrs = { count: teacher.length, momentum, skipIndex: skip ? skip.index : -1, inPlace };
    const out = tf.engine().runKernel(FLAT_EMA_KERNEL, inputs as never, attrs as never) as
      | tf.Tensor
      | tf.Tensor[];
    const fresh = Array.isArray(out) ? out : [out];
    let k = 0;
    return inPlace.map((own) => (own ? null : fresh[k++]));
  },
  { skipFlag: true },
) satisfies FlatEmaKernel;

/**
 * The values of one flat EMA step that change every step, as the kernel uploads them: the
 * momentum and 1 − momentum (a schedule: in a buffer, not the uniforms, so that the dispatch keeps
 * its uniforms and bind group, encode.ts). A captured step (step-capture.ts) writes them for the
 * step it replays.
 */
export function flatEmaStepValues(momentum: number): Float32Array {
  return new Float32Array([momentum, 1 - momentum]);
}
