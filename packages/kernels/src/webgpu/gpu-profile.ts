import * as tf from "@tensorflow/tfjs";
import {
  type GpuPipeline,
  type WebGpuInternals,
  noteRawDispatch,
  rawDispatchCount,
  webgpuInternals,
  GPU_USAGE,
  GPU_MAP_MODE_READ,
} from "./flat-buffers";
import { type GpuProfile, programLabel, summariseTimestamps } from "./gpu-profile-summary";

// GPU time per dispatch, from WebGPU timestamp queries (the device feature `timestamp-query`,
// which tfjs-backend-webgpu 4.22 requests whenever the adapter offers it). While a profile runs,
// every dispatch that encode() records, and every tfjs program, gets a compute pass of its own
// whose beginning and end write timestamps; the difference is that dispatch's GPU time (Dawn
// writes pass timestamps after the preceding work has finished, so gaps between dispatches are
// not counted). Splitting the passes costs a little host time and nothing in results: storage
// writes of one pass are visible to the next, as between dispatches of one pass. Dispatches that
// this package records with `dispatchAll` (flat-buffers.ts) are not timed; the profile counts them.

/** WebGPU's largest query set (queries): two per timed dispatch. */
const QUERIES_PER_SET = 4096;
const DISPATCHES_PER_SET = QUERIES_PER_SET / 2;

interface QuerySet {
  destroy(): void;
}
interface ReadBuffer {
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}
interface Pass {
  setPipeline(p: unknown): void;
  setBindGroup(i: number, g: unknown): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}
interface TimingEncoder {
  beginComputePass(desc?: object): Pass;
  resolveQuerySet(set: QuerySet, first: number, count: number, dst: ReadBuffer, at: number): void;
  copyBufferToBuffer(src: ReadBuffer, at: number, dst: ReadBuffer, to: number, bytes: number): void;
}
interface TimingDevice {
  features: { has(name: string): boolean };
  createQuerySet(desc: { type: "timestamp"; count: number }): QuerySet;
  createBuffer(desc: { size: number; usage: number }): ReadBuffer;
}
/** tfjs's `recordAndSubmit(program, …)`: where it records one program's dispatch. */
type RecordAndSubmit = (program: { constructor: { name: string } }, ...rest: unknown[]) => unknown;
interface TfjsRecorder {
  recordAndSubmit?: RecordAndSubmit;
  activeTimers?: unknown[] | null;
}

/** The profile being recorded; `recorder` is null when none runs (encode.ts reads it). */
export const gpuProfiling: { recorder: GpuProfileRecorder | null } = { recorder: null };

export class GpuProfileRecorder {
  readonly keys: string[] = [];
  readonly workgroups: [number, number, number][] = [];
  readonly sets: QuerySet[] = [];
  direct = 0;
  tfjsPrograms = 0;
  dropped = 0;
  droppedTfjs = 0;
  untimedTfjs = 0;
  readonly raw0 = rawDispatchCount();
  private restoreTfjs: () => void = () => {};

  constructor(
    readonly b: WebGpuInternals,
    readonly capacity: number,
  ) {}

  /**
   * End tfjs's open pass and begin a timestamped one for the next dispatch (left as tfjs's open
   * pass), or return null past the capacity.
   */
  openPass(key: string, workgroups: [number, number, number]): Pass | null {
    const i = this.keys.length;
    if (i >= this.capacity) {
      this.dropped++;
      return null;
    }
    const device = this.b.device as unknown as TimingDevice;
    const s = Math.floor(i / DISPATCHES_PER_SET);
    if (s === this.sets.length)
      this.sets.push(device.createQuerySet({ type: "timestamp", count: QUERIES_PER_SET }));
    this.keys.push(key);
    this.workgroups.push(workgroups);
    const q = (i % DISPATCHES_PER_SET) * 2;
    this.b.ensureCommandEncoderReady();
    this.b.endComputePassEncoder();
    const pass = (this.b.commandEncoder as unknown as TimingEncoder).beginComputePass({
      timestampWrites: {
        querySet: this.sets[s],
        beginningOfPassWriteIndex: q,
        endOfPassWriteIndex: q + 1,
      },
    });
    this.b.computePassEncoder = pass;
    return pass;
  }

  /** encode()'s dispatch while profiling: in a timestamped pass of its own. */
  dispatch(key: string, p: GpuPipeline, group: unknown, wg: [number, number, number]): void {
    const b = this.b;
    if (this.openPass(key, wg)) this.direct++;
    else {
      b.ensureCommandEncoderReady();
      if (!b.computePassEncoder)
        b.computePassEncoder = (b.commandEncoder as unknown as TimingEncoder).beginComputePass();
    }
    const pass = b.computePassEncoder as Pass;
    pass.setPipeline(p);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...wg);
    b.endComputePassEncoder();
    b.dispatchCountInPass++;
    noteRawDispatch();
  }

  /**
   * Time tfjs's programs too: its `recordAndSubmit` dispatches into the open pass when there is
   * one (tfjs 4.22), so a timestamped pass is opened before it and ended after it — unless tfjs
   * times programs itself (tf.time, tf.profile: `activeTimers`), when it ends any open pass first.
   */
  wrapTfjs(): void {
    const be = this.b as unknown as TfjsRecorder;
    const original = be.recordAndSubmit;
    if (typeof original !== "function") return;
    const hadOwn = Object.hasOwn(be, "recordAndSubmit");
    const self = this;
    be.recordAndSubmit = function (this: unknown, program, ...rest) {
      if (be.activeTimers != null) {
        self.untimedTfjs++;
        return original.call(this, program, ...rest);
      }
      const dispatch = (program as { dispatch?: number[] }).dispatch ?? [0, 0, 0];
      const pass = self.openPass(programLabel(program), [
        dispatch[0],
        dispatch[1] ?? 1,
        dispatch[2] ?? 1,
      ]);
      if (pass) self.tfjsPrograms++;
      else self.droppedTfjs++;
      try {
        return original.call(this, program, ...rest);
      } finally {
        // tfjs ends the pass itself when it submits (every 15 dispatches).
        if (pass && self.b.computePassEncoder === pass) self.b.endComputePassEncoder();
      }
    };
    this.restoreTfjs = () => {
      if (hadOwn) be.recordAndSubmit = original;
      else delete be.recordAndSubmit;
    };
  }

  /** Stop recording and read the timestamps back (one submit, one map). */
  async finish(): Promise<GpuProfile> {
    this.restoreTfjs();
    const b = this.b;
    const device = b.device as unknown as TimingDevice;
    const n = this.keys.length;
    const staging: ReadBuffer[] = [];
    const resolved: ReadBuffer[] = [];
    try {
      if (n > 0) {
        b.ensureCommandEncoderReady();
        b.endComputePassEncoder();
        const encoder = b.commandEncoder as unknown as TimingEncoder;
        this.sets.forEach((set, s) => {
          const queries = Math.min(DISPATCHES_PER_SET, n - s * DISPATCHES_PER_SET) * 2;
          const bytes = queries * 8;
          const r = device.createBuffer({
            size: bytes,
            usage: GPU_USAGE.QUERY_RESOLVE | GPU_USAGE.COPY_SRC,
          });
          const m = device.createBuffer({
            size: bytes,
            usage: GPU_USAGE.MAP_READ | GPU_USAGE.COPY_DST,
          });
          encoder.resolveQuerySet(set, 0, queries, r, 0);
          encoder.copyBufferToBuffer(r, 0, m, 0, bytes);
          resolved.push(r);
          staging.push(m);
        });
        b.submitQueue();
      }
      const stamps = new BigInt64Array(n * 2);
      for (let s = 0; s < staging.length; s++) {
        await staging[s].mapAsync(GPU_MAP_MODE_READ);
        stamps.set(new BigInt64Array(staging[s].getMappedRange()), s * QUERIES_PER_SET);
        staging[s].unmap();
      }
      // rawDispatchCount counts encode()'s dispatches (timed or past the capacity) and dispatchAll's.
      const droppedDirect = this.dropped - this.droppedTfjs;
      const untimedRaw = rawDispatchCount() - this.raw0 - this.direct - droppedDirect;
      return {
        ...summariseTimestamps(this.keys, this.workgroups, stamps),
        direct: this.direct,
        tfjsPrograms: this.tfjsPrograms,
        dropped: this.dropped,
        untimed: untimedRaw + this.untimedTfjs,
      };
    } finally {
      for (const x of [...staging, ...resolved, ...this.sets]) x.destroy();
    }
  }
}

let pending: { recorder: GpuProfileRecorder | null; reason?: string } | null = null;

/**
 * Start timing every dispatch on the GPU (the webgpu backend; `backend` defaults to tfjs's active
 * one), up to `capacity` dispatches (past it they run untimed and are counted as dropped). Without
 * the `timestamp-query` device feature nothing changes and {@link stopGpuProfile} reports why.
 */
export function startGpuProfile(options: { capacity?: number; backend?: unknown } = {}): void {
  const capacity = options.capacity ?? 8192;
  if (!Number.isInteger(capacity) || capacity < 1)
    throw new Error(`startGpuProfile capacity: expected a positive integer, got ${capacity}`);
  if (pending) throw new Error("startGpuProfile: a profile is already running (stop it first)");
  const backend = options.backend ?? tf.backend();
  if (options.backend === undefined && tf.getBackend() !== "webgpu")
    throw new Error(`startGpuProfile: expected the webgpu backend, got ${tf.getBackend()}`);
  const b = webgpuInternals(backend);
  const device = b.device as unknown as TimingDevice;
  if (!device.features?.has("timestamp-query")) {
    pending = {
      recorder: null,
      reason:
        "the WebGPU device lacks the timestamp-query feature (tfjs requests it only where the adapter offers it)",
    };
    return;
  }
  const recorder = new GpuProfileRecorder(b, capacity);
  recorder.wrapTfjs();
  pending = { recorder };
  gpuProfiling.recorder = recorder;
}

/** Stop the profile started by {@link startGpuProfile}: submits pending commands, reads the times. */
export async function stopGpuProfile(): Promise<GpuProfile> {
  if (!pending) throw new Error("stopGpuProfile: no profile is running (call startGpuProfile)");
  const { recorder, reason } = pending;
  pending = null;
  gpuProfiling.recorder = null;
  if (!recorder)
    return {
      available: false,
      reason,
      dispatches: 0,
      direct: 0,
      tfjsPrograms: 0,
      invalid: 0,
      dropped: 0,
      untimed: 0,
      sumMs: 0,
      granularityNs: 0,
      byKey: [],
      byShape: [],
      times: [],
    };
  return recorder.finish();
}

export type { GpuDispatchTime, GpuKeyTime, GpuProfile } from "./gpu-profile-summary";
