// Record the WebGPU calls that a span of work makes (command encoders, compute passes, buffer
// copies and clears, queue writes and submits), compare two recordings, and replay one raw: the
// same calls on the same objects, with no tfjs and no kernel JavaScript in between. step-replay.ts
// uses it to measure what a SiT step's host part costs when only its WebGPU calls are left.
//
// The recording and the replay are @sit/kernels' own (call-recorder.ts, which its captured steps
// use); this file adds what a measurement wants of them: a comparison that names what differs
// between two recordings, and counts by kind.
import {
  type RecordedCall,
  type Recording,
  makeCalls,
  startRecording,
} from "../../packages/kernels/src/webgpu/call-recorder";
import { type GpuBuffer, webgpuInternals } from "../../packages/kernels/src/webgpu/flat-buffers";

export type { RecordedCall };

/** WebGPU's `GPUBufferUsage.MAP_READ`. */
const MAP_READ = 1;

/** Whether a copy goes into a buffer that the host maps to read (a read's staging buffer). */
const intoRead = (c: RecordedCall) =>
  c.op === "copy" && ((c.dst as GpuBuffer & { usage: number }).usage & MAP_READ) !== 0;

/** A recorder on the active webgpu backend: open, close, replay. */
export interface WebgpuCallRecorder {
  /** Start recording (throws if one is open). */
  start(): void;
  /** Stop, and return what was recorded since `start`. */
  stop(): Recording;
  /**
   * Make `calls` again (new encoders and passes, the same pipelines, bind groups and buffers),
   * leaving out copies into buffers that the host maps to read (a read's staging buffer may be
   * mapped or gone by now). Nothing is recorded meanwhile.
   */
  replay(calls: RecordedCall[]): void;
}

/** A recorder of `backend`'s WebGPU calls (tfjs's webgpu backend). */
export function recordWebgpuCalls(backend: unknown): WebgpuCallRecorder {
  const b = webgpuInternals(backend);
  let stop: (() => Recording) | null = null;
  return {
    start() {
      if (stop) throw new Error("webgpu-calls: a recording is open already");
      stop = startRecording(b);
    },
    stop() {
      if (!stop) throw new Error("webgpu-calls: no recording is open");
      const out = stop();
      stop = null;
      return out;
    },
    replay(calls) {
      makeCalls(
        b,
        calls.filter((c) => !intoRead(c)),
      );
    },
  };
}

/** How two recordings differ: see {@link compareWebgpuCalls}. */
export interface WebgpuCallsComparison {
  /** Same calls, in order, on the same pipelines, bind groups and buffers, with the same sizes. */
  sameCalls: boolean;
  /** The first call that differs (index and why), when not `sameCalls`. */
  firstDifference?: { index: number; why: string };
  /**
   * Calls of the same kind, in the same place, made on other objects or with other sizes (a bind
   * group over other buffers, say); counted while the kinds of the two recordings' calls agree.
   */
  differingCalls: number;
  /** The writes (indices among the writes) whose bytes differ: the work's per-run inputs. */
  varyingWrites: number[];
  /** Their bytes in all. */
  varyingBytes: number;
}

const same = (a: unknown[], b: unknown[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** A call's objects and sizes, in a fixed order (a read's staging buffer as "read"). */
function fields(c: RecordedCall): unknown[] {
  switch (c.op) {
    case "copy":
      // A read's staging buffer comes from a pool: which one is no part of the work.
      return [c.encoder, c.src, c.srcOffset, intoRead(c) ? "read" : c.dst, c.dstOffset, c.size];
    case "clear":
      return [c.encoder, c.buffer, c.offset, c.size];
    case "pipeline":
      return [c.pass, c.pipeline];
    case "group":
      return [c.pass, c.index, c.group];
    case "dispatch":
      return [c.pass, c.x, c.y, c.z];
    case "submit":
      return c.commandBuffers;
    case "pass":
    case "finish":
      return [c.encoder, c.id];
    case "end":
      return [c.pass];
    case "encoder":
      return [c.id];
    case "write":
      return [c.buffer, c.offset, c.bytes.length];
  }
}

/**
 * Compare two recordings of the same work: whether they make the same calls on the same objects
 * (so that one could stand for the other, given the other's written bytes), and which writes carry
 * bytes that differ between them.
 */
export function compareWebgpuCalls(a: RecordedCall[], b: RecordedCall[]): WebgpuCallsComparison {
  const varyingWrites: number[] = [];
  let varyingBytes = 0;
  let writes = 0;
  let firstDifference: { index: number; why: string } | undefined;
  let differingCalls = 0;
  const result = (): WebgpuCallsComparison => ({
    sameCalls: firstDifference === undefined,
    ...(firstDifference ? { firstDifference } : {}),
    differingCalls,
    varyingWrites,
    varyingBytes,
  });
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (!x || !y) {
      firstDifference ??= { index: i, why: `one recording ends at call ${i}` };
      return result();
    }
    if (x.op !== y.op) {
      firstDifference ??= { index: i, why: `${x.op} against ${y.op}` };
      return result();
    }
    if (!same(fields(x), fields(y))) {
      differingCalls++;
      firstDifference ??= { index: i, why: `${x.op} on other objects or sizes` };
    } else if (x.op === "write" && y.op === "write" && !x.bytes.every((v, k) => v === y.bytes[k])) {
      varyingWrites.push(writes);
      varyingBytes += x.bytes.length;
    }
    if (x.op === "write") writes++;
  }
  return result();
}

/** How many calls of each kind, the bytes written and the bind groups made. */
export function countWebgpuCalls(recording: Recording): Record<string, number> {
  const counts: Record<string, number> = {
    writeBytes: 0,
    bindGroupsMade: recording.groupBuffers.size,
  };
  for (const c of recording.calls) {
    counts[c.op] = (counts[c.op] ?? 0) + 1;
    if (c.op === "write") counts.writeBytes += c.bytes.length;
  }
  return counts;
}
