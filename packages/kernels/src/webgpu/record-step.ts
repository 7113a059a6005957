import * as tf from "@tensorflow/tfjs";
import { ownedPool } from "./buffer-pool";
import { type RecordedCall, type Recording, startRecording } from "./call-recorder";
import {
  type GpuBuffer,
  type WebGpuInternals,
  tensorDataOf,
  watchBuffers,
  webgpuInternals,
} from "./flat-buffers";

// One training step run with its WebGPU calls recorded (call-recorder.ts), with what
// step-capture.ts needs to know of it besides the calls: which tensor held each buffer its
// kernels bound, which of tfjs's pool buffers were in use before it, and which variables it
// assigned new buffers; and the comparison of two recorded steps that decides whether the
// second can be replayed.

/** A step run and recorded by {@link recordStep}. */
export interface RecordedStep<T> {
  value: T;
  recording: Recording;
  /** The tensor last seen holding each buffer the step's kernels bound (by dataId). */
  owners: Map<GpuBuffer, object>;
  /** The pool's buffers in use when the step started (null: not the constant-time pool). */
  inUseBefore: Set<object> | null;
  /**
   * Variables the step assigned new values (a BatchNorm's running statistics): the buffer each
   * held before and the one it holds after.
   */
  handoffs: [GpuBuffer, GpuBuffer][];
}

/** Each registered variable's buffer now (null: deferred or on the host), by variable. */
function variableBuffers(b: WebGpuInternals): Map<tf.Variable, GpuBuffer | null> {
  const out = new Map<tf.Variable, GpuBuffer | null>();
  for (const v of Object.values(tf.engine().registeredVariables)) {
    if (v.isDisposed || !b.tensorMap.has(v.dataId)) continue;
    out.set(v, (tensorDataOf(b, v.dataId).resource as GpuBuffer | null) ?? null);
  }
  return out;
}

/** Submit what tfjs has encoded so far (a recording or a replay starts on a clean queue). */
export function flush(b: WebGpuInternals): void {
  b.ensureCommandEncoderReady();
  b.endComputePassEncoder();
  b.submitQueue();
}

/** Run `fn` (a step's tfjs work) with its WebGPU calls recorded, its commands all submitted. */
export function recordStep<T>(fn: () => T): RecordedStep<T> {
  const b = webgpuInternals(tf.backend());
  flush(b);
  const owners = new Map<GpuBuffer, object>();
  const inUseBefore = ownedPool(b.bufferManager)?.inUse() ?? null;
  const before = variableBuffers(b);
  const stop = startRecording(b);
  let recording: Recording | undefined;
  watchBuffers((dataId, buffer) => owners.set(buffer, dataId));
  try {
    const value = fn();
    flush(b);
    watchBuffers(null);
    recording = stop();
    const handoffs: [GpuBuffer, GpuBuffer][] = [];
    for (const [v, after] of variableBuffers(b)) {
      const old = before.get(v);
      if (old && after && old !== after) handoffs.push([old, after]);
      // (A variable that only tfjs's own kernels bound, which bufferOf did not see.)
      if (after && !owners.has(after)) owners.set(after, v.dataId);
    }
    return { value, recording, owners, inUseBefore, handoffs };
  } finally {
    watchBuffers(null);
    if (!recording) stop();
  }
}

const bytesOf = (v: ArrayBufferView) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The index of the write that carries each upload, in order, or why one matches none. */
export function slotsOf(
  calls: RecordedCall[],
  uploads: readonly ArrayBufferView[],
): number[] | string {
  const slots: number[] = [];
  let j = 0;
  for (const [k, u] of uploads.entries()) {
    const bytes = bytesOf(u);
    while (j < calls.length) {
      const c = calls[j];
      if (c.op === "write" && c.offset === 0 && sameBytes(c.bytes, bytes)) break;
      j++;
    }
    if (j === calls.length)
      return `upload ${k} (${bytes.byteLength} bytes) is not written by the step`;
    slots.push(j++);
  }
  return slots;
}

/** Why two recorded steps' calls differ other than by objects and the uploads' bytes, or null. */
export function difference(
  a: RecordedCall[],
  b: RecordedCall[],
  slots: ReadonlySet<number>,
): string | null {
  if (a.length !== b.length) return `the steps made ${a.length} and ${b.length} WebGPU calls`;
  for (let i = 0; i < a.length; i++) {
    const [x, y] = [a[i], b[i]] as [Record<string, unknown>, Record<string, unknown>];
    if (x.op !== y.op) return `call ${i} was ${x.op} and then ${y.op}`;
    for (const k of Object.keys(x)) {
      const [u, v] = [x[k], y[k]];
      if (k === "bytes") {
        const [p, q] = [u as Uint8Array, v as Uint8Array];
        if (slots.has(i) ? p.byteLength !== q.byteLength : !sameBytes(p, q))
          return `write ${i} carried other bytes in the second step and is not an upload`;
      } else if (typeof u === "number" || typeof u === "string" || u === undefined) {
        if (u !== v) return `call ${i} (${x.op}) had ${k} ${String(u)} and then ${String(v)}`;
      } else if (Array.isArray(u)) {
        if (JSON.stringify(u) !== JSON.stringify(v)) return `call ${i} (${x.op}) differs in ${k}`;
      }
    }
  }
  return null;
}
