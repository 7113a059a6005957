import * as tf from "@tensorflow/tfjs";
import { type OwnedPool, ownedPool } from "./buffer-pool";
import { type RecordedCall, makeCalls } from "./call-recorder";
import { mirrorEpoch } from "./mirrors";
import { type RecordedStep, difference, slotsOf } from "./record-step";
import {
  type GpuBuffer,
  type WebGpuInternals,
  bufferOf,
  buffersOfGroup,
  copyElements,
  GPU_USAGE,
  isPersistentBuffer,
  newTensorInfo,
  tensorDataOf,
  webgpuInternals,
} from "./flat-buffers";

export { type RecordedStep, recordStep } from "./record-step";

// A training step captured once and replayed, as CUDA graphs are: on webgpu most of a step's host
// time is JavaScript (tfjs's engine and tape, the kernels' own code) deciding the same WebGPU calls
// step after step, and the calls themselves are about a quarter of it (measured on lavapipe:
// tools/bench/results/lavapipe-2026-12-06-replay-floor). A captured step makes the recorded calls
// again with no tfjs and no kernel code in between.
//
// What a replay needs, and how it is had:
// - The step's per-step values. Everything a step takes from the host reaches the device as a
//   queue write (an upload of a tensor's host values): the GMML plan, drop-path factors, the
//   optimiser's step sizes. The caller draws them itself (its `uploads`, in the order the step
//   writes them) and they replace those writes' bytes. Every other write of the step must carry
//   the same bytes in both recorded steps: it is replayed as recorded.
// - Its inputs: copied at each replay into tensors of the capture's own, which the recorded step
//   read.
// - Buffers nothing else writes. Buffers the recorded step took from tfjs's pool and gave back
//   (its intermediates) are taken out of the pool for the capture's life. Buffers of tensors that
//   outlive the step (parameters, optimiser moments, the EMA teacher) must still belong to the
//   same tensors at each replay, which is checked. Buffers from outside the pool (uniforms,
//   scratch) must not have been destroyed, which is checked too.
// - Its outputs: the capture keeps the recorded step's output tensors, and a replay hands back
//   copies of them.
// Two consecutive steps are recorded, and the capture is made from the second only if both made
// the same calls apart from objects and the caller's uploads. A replay that cannot be made (an
// input of another shape, an upload of another size, a tensor that changed hands) says why, and
// the caller disposes the capture and runs the step as usual.

const DESTROYED = Symbol("sitDestroyed");
const markedDestroy = new WeakSet<object>();

/** Mark every buffer of `b`'s device when it is destroyed (once per buffer class). */
function markDestroyedBuffers(b: WebGpuInternals): void {
  const probe = b.device.createBuffer({ size: 4, usage: 0x08 }) as GpuBuffer & { destroy(): void };
  const proto = Object.getPrototypeOf(probe) as { destroy(this: object): void };
  probe.destroy();
  if (markedDestroy.has(proto)) return;
  markedDestroy.add(proto);
  const destroy = proto.destroy;
  proto.destroy = function (this: object) {
    (this as { [DESTROYED]?: true })[DESTROYED] = true;
    destroy.call(this);
  };
}

/**
 * A copy of `t` in a buffer of its own (webgpu; no kernel call): the tensors a recorded step
 * reads its inputs from, which its capture keeps.
 */
export function copyOnDevice(t: tf.Tensor): tf.Tensor {
  if (t.dtype !== "float32")
    throw new Error(`copyOnDevice: expected a float32 tensor, got ${t.dtype} [${t.shape}]`);
  const b = webgpuInternals(tf.backend());
  const info = newTensorInfo(b, [...t.shape]);
  copyElements(b, bufferOf(b, t), 0, bufferOf(b, info), 0, t.size);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** A tensor the capture keeps, and its buffer. */
interface Kept {
  tensor: tf.Tensor;
  buffer: GpuBuffer;
}

/**
 * A step captured from two recorded ones ({@link StepCapture.make}) and replayed with new inputs
 * and uploads ({@link StepCapture.replay}).
 */
export class StepCapture {
  private disposed = false;
  /** mirrors.ts's epoch when the capture was made: where the host knew parameters to lie. */
  private readonly epoch = mirrorEpoch();

  private constructor(
    private readonly b: WebGpuInternals,
    private readonly pool: OwnedPool,
    private readonly calls: RecordedCall[],
    /** Call index → index in the uploads, for the writes the caller's uploads replace. */
    private readonly slots: Map<number, number>,
    private readonly inputs: Kept[],
    private readonly outputs: Kept[],
    private readonly taken: GpuBuffer[],
    /** Buffers of tensors that outlive the step, and those tensors' dataIds. */
    private readonly held: [GpuBuffer, object][],
    /** Buffers from outside the pool. */
    private readonly own: GpuBuffer[],
    /** Variables' buffers the step reads and the ones it leaves their new values in. */
    private readonly handoffs: [GpuBuffer, GpuBuffer][],
  ) {
    this.handoffSizes = handoffs.map(([from, to]) => Math.min(from.size, to.size) / 4);
    this.stagedAt = [];
    let at = 0;
    for (const n of this.handoffSizes) {
      this.stagedAt.push(at);
      at += n;
    }
    this.staging =
      at > 0
        ? b.device.createBuffer({ size: at * 4, usage: GPU_USAGE.COPY_SRC | GPU_USAGE.COPY_DST })
        : null;
  }

  /** Floats of each handoff, where it sits in the staging buffer, and that buffer. */
  private readonly handoffSizes: number[];
  private readonly stagedAt: number[];
  private readonly staging: GpuBuffer | null;

  /**
   * A capture of `second`, recorded right after `first` with the same calls, or why not. `inputs`
   * are the tensors the steps read their inputs from (the capture keeps them: a replay copies its
   * inputs into them); `outputs` are `second`'s output tensors (the capture keeps them: ask
   * {@link StepCapture.outputCopies} for the step's results). `uploads` are each step's per-step
   * values in the order it wrote them. On failure nothing is kept: the caller still owns
   * everything.
   */
  static make(
    first: RecordedStep<unknown>,
    firstUploads: readonly ArrayBufferView[],
    second: RecordedStep<unknown>,
    secondUploads: readonly ArrayBufferView[],
    io: { inputs: tf.Tensor[]; outputs: tf.Tensor[] },
  ): StepCapture | string {
    const b = webgpuInternals(tf.backend());
    const pool = ownedPool((b as unknown as { bufferManager: unknown }).bufferManager);
    if (!pool) return "tfjs's buffer pool is not the constant-time one (settleBufferPool)";
    for (const r of [first.recording, second.recording])
      if (r.unreplayable) return `the step made ${r.unreplayable}`;
    const calls = second.recording.calls;
    const slots1 = slotsOf(first.recording.calls, firstUploads);
    const slots2 = slotsOf(calls, secondUploads);
    if (typeof slots1 === "string") return slots1;
    if (typeof slots2 === "string") return slots2;
    if (slots1.join() !== slots2.join())
      return "the uploads were written at other points of the two steps";
    const why = difference(first.recording.calls, calls, new Set(slots2));
    if (why) return why;

    const kept = (t: tf.Tensor): Kept => ({ tensor: t, buffer: bufferOf(b, t) });
    const inputs = io.inputs.map(kept);
    const outputs = io.outputs.map(kept);
    const mine = new Set([...inputs, ...outputs].map((k) => k.buffer));
    const referenced = new Set<GpuBuffer>();
    for (const c of calls) {
      if (c.op === "copy") referenced.add(c.src).add(c.dst);
      else if (c.op === "clear" || c.op === "write") referenced.add(c.buffer);
      else if (c.op === "group") {
        const buffers = second.recording.groupBuffers.get(c.group) ?? buffersOfGroup(c.group);
        if (!buffers)
          return "a bind group made before the recording by code that does not say what it binds";
        for (const x of buffers) referenced.add(x);
      }
    }
    const taken: GpuBuffer[] = [];
    const held: [GpuBuffer, object][] = [];
    const own: GpuBuffer[] = [];
    // A buffer that held a tensor before the step and is free after it carried state into the
    // step: a variable's old values, handed on (each replay first copies the new values back).
    const handedFrom = new Map(second.handoffs);
    if (!second.inUseBefore) return "tfjs's buffer pool was not the constant-time one";
    for (const x of referenced) {
      if (second.recording.destroyed.has(x)) return "the step destroyed a buffer it used";
      if (mine.has(x)) continue;
      const standing = pool.standing(x);
      if (standing === "free" && second.inUseBefore.has(x) && !handedFrom.has(x))
        return "the step read a buffer of a tensor from before it that it freed, not a variable's";
      if (standing === "free") taken.push(x);
      // (A kernel's scratch buffer from the pool lives as long as the backend.)
      else if (standing === "other" || isPersistentBuffer(x)) own.push(x);
      else {
        const owner = second.owners.get(x);
        if (!owner || !holds(b, owner, x))
          return "a buffer in use by a tensor the step's kernels did not bind";
        held.push([x, owner]);
      }
    }
    // (The pool may hand one variable's old buffer to another's new values in the same step.)
    const handoffs = second.handoffs.filter(([from]) => referenced.has(from));
    const newBuffers = new Set(handoffs.map(([, to]) => to));
    for (const [from, to] of handoffs)
      if (!(taken.includes(from) || newBuffers.has(from)) || !held.some(([x]) => x === to))
        return "a variable the step assigned did not leave its old buffer free and its new one held";
    if (!pool.take(taken)) return "tfjs's pool did not hold the step's intermediate buffers";
    markDestroyedBuffers(b);
    return new StepCapture(
      b,
      pool,
      calls,
      new Map(slots2.map((c, i) => [c, i])),
      inputs,
      outputs,
      taken,
      held,
      own,
      handoffs,
    );
  }

  /** The step's WebGPU calls (what a replay makes again). */
  get callCount(): number {
    return this.calls.length;
  }

  /**
   * Why `inputs` and `uploads` cannot be replayed now, or null. Checks shapes, the uploads'
   * sizes, that the tensors that outlive the step still hold their buffers and that no buffer
   * from outside the pool was destroyed.
   */
  check(inputs: readonly tf.Tensor[], uploads: readonly ArrayBufferView[]): string | null {
    if (this.disposed) return "the capture was disposed";
    if (inputs.length !== this.inputs.length)
      return `${inputs.length} inputs for ${this.inputs.length}`;
    for (const [i, t] of inputs.entries()) {
      const k = this.inputs[i].tensor;
      if (t.dtype !== k.dtype || !tf.util.arraysEqual(t.shape, k.shape))
        return `input ${i} is ${t.dtype} [${t.shape}], the captured step's ${k.dtype} [${k.shape}]`;
    }
    if (uploads.length !== this.slots.size)
      return `${uploads.length} uploads for ${this.slots.size}`;
    for (const [c, i] of this.slots) {
      const n = (this.calls[c] as { bytes: Uint8Array }).bytes.byteLength;
      if (uploads[i].byteLength !== n)
        return `upload ${i} has ${uploads[i].byteLength} bytes, the captured step's ${n}`;
    }
    if (mirrorEpoch() !== this.epoch)
      return "where the host knows parameters to lie changed since (a read, a load or an update outside the step)";
    for (const [x, owner] of this.held)
      if (!holds(this.b, owner, x)) return "a tensor the step reads changed buffers";
    for (const x of this.own)
      if ((x as { [DESTROYED]?: true })[DESTROYED]) return "a buffer the step uses was destroyed";
    return null;
  }

  /**
   * Make the step's calls again on `inputs` with `uploads`. Returns copies of its outputs (the
   * caller owns them); throws where {@link StepCapture.check} finds a reason not to.
   */
  replay(inputs: readonly tf.Tensor[], uploads: readonly ArrayBufferView[]): tf.Tensor[] {
    const out = this.tryReplay(inputs, uploads);
    if (typeof out === "string")
      throw new Error(`@sit/kernels: a captured step cannot be replayed: ${out}`);
    return out;
  }

  /**
   * {@link StepCapture.replay}, or, where {@link StepCapture.check} finds a reason not to, that
   * reason (nothing done): one check per step for a caller that falls back to the usual step.
   */
  tryReplay(
    inputs: readonly tf.Tensor[],
    uploads: readonly ArrayBufferView[],
  ): tf.Tensor[] | string {
    const why = this.check(inputs, uploads);
    if (why) return why;
    const b = this.b;
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    for (const [i, t] of inputs.entries())
      copyElements(b, bufferOf(b, t), 0, this.inputs[i].buffer, 0, t.size);
    // Each variable's latest values into the buffer the step reads them from: all read (into a
    // staging buffer) before any is written, as one variable's old buffer may hold another's new.
    const { handoffs, handoffSizes: sizes, stagedAt: at } = this;
    const staging = this.staging as GpuBuffer;
    for (let i = 0; i < handoffs.length; i++)
      copyElements(b, handoffs[i][1], 0, staging, at[i], sizes[i]);
    for (let i = 0; i < handoffs.length; i++)
      copyElements(b, staging, at[i], handoffs[i][0], 0, sizes[i]);
    b.submitQueue();
    const { slots } = this;
    makeCalls(this.b, this.calls, (i) => {
      const u = slots.get(i);
      return u === undefined ? undefined : uploads[u];
    });
    return this.outputCopies();
  }

  /** Copies of the step's outputs as the last replay (or the second recorded step) left them. */
  outputCopies(): tf.Tensor[] {
    const b = this.b;
    return this.outputs.map(({ tensor, buffer }) => {
      const info = newTensorInfo(b, [...tensor.shape]);
      copyElements(b, buffer, 0, bufferOf(b, info), 0, tensor.size);
      return tf.engine().makeTensorFromTensorInfo(info);
    });
  }

  /** Give the intermediate buffers back to tfjs's pool and dispose the kept tensors. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // Commands already submitted may still use them: the pool hands them out for later commands only.
    this.pool.giveBack(this.taken);
    (this.staging as (GpuBuffer & { destroy(): void }) | null)?.destroy();
    tf.dispose([...this.inputs, ...this.outputs].map((k) => k.tensor));
  }
}

/** Whether the tensor `dataId` is alive and holds `buffer`. */
function holds(b: WebGpuInternals, dataId: object, buffer: GpuBuffer): boolean {
  return b.tensorMap.has(dataId) && tensorDataOf(b, dataId).resource === buffer;
}
