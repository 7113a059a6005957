import { ShapeError } from "@sit/core";
import type * as tf from "@tensorflow/tfjs";
import {
  bindGroup,
  type GpuBuffer,
  type GpuPipeline,
  type WebGpuInternals,
  bufferOf,
  noteRawDispatch,
  pipeline,
  GPU_USAGE,
  VIEW_ALIGN,
} from "./flat-buffers";
import { gpuProfiling } from "./gpu-profile";
import { mirrorOf } from "./mirrors";
import { flatRangeUsable } from "./write-back";

// Dispatches encoded straight onto tfjs's open compute pass with as little host work per call as
// possible: the WGSL text is built once per pipeline key, uniform buffers are made once per
// (key, values) and kept, and bind groups are kept per (pipeline, buffers, ranges, uniforms). A
// fused kernel that records many dispatches (a transformer block: 5 forward, 13 backward) costs a
// few microseconds per dispatch instead of a tfjs kernel call each. tfjs's buffer manager hands
// the same buffers back step after step, so the bind groups of a training loop repeat.

/** A range of a tensor's GPU buffer, in float32 elements. */
export interface View {
  buffer: GpuBuffer;
  offset: number;
  size: number;
}

export { VIEW_ALIGN };

/**
 * Where `t`'s values lie, when not in its own buffer: its range of a flat buffer when it is a
 * mirror of one that starts aligned (a parameter the flat AdamW or a teacher the flat EMA updated,
 * whose own buffer may wait for a deferred copy: write-back.ts). Binding the flat range reads the
 * same values, and it saves that copy for every tensor only this package's kernels read. (A
 * tensor's own buffer may be bound past its shape: a workspace handle, flat-buffers.ts.)
 */
export function boundMirror(
  b: WebGpuInternals,
  t: tf.TensorInfo,
): { flat: tf.TensorInfo; offset: number } | undefined {
  const m = mirrorOf(b, t);
  return m && flatRangeUsable(m.offset) ? m : undefined;
}

/** Elements of `t`. */
export function sizeOf(t: tf.TensorInfo): number {
  let n = 1;
  for (let i = 0; i < t.shape.length; i++) n *= t.shape[i];
  return n;
}

/** `t`'s values (its {@link boundMirror} or its own buffer), or `size` elements from `offset` of them. */
export function viewOf(b: WebGpuInternals, t: tf.TensorInfo, offset = 0, size?: number): View {
  const n = size ?? sizeOf(t);
  const m = boundMirror(b, t);
  if (m) return { buffer: bufferOf(b, m.flat), offset: m.offset + offset, size: n };
  return { buffer: bufferOf(b, t), offset, size: n };
}

/** Uniforms: 32-bit scalars (i32 or f32), packed in order (a WGSL struct of scalars). */
export type Scalars = { i: number } | { f: number };

/** Bound on each cache; cleared (not evicted one by one) past it. */
const CACHE_LIMIT = 4096;

interface DeviceCaches {
  uniforms: Map<string, GpuBuffer>;
  groups: Map<string, unknown>;
  ids: WeakMap<object, number>;
  nextId: number;
}
const caches = new WeakMap<object, DeviceCaches>();

function cachesOf(b: WebGpuInternals): DeviceCaches {
  let c = caches.get(b.device);
  if (!c) {
    c = { uniforms: new Map(), groups: new Map(), ids: new WeakMap(), nextId: 1 };
    caches.set(b.device, c);
  }
  return c;
}

function idOf(c: DeviceCaches, o: object): number {
  let id = c.ids.get(o);
  if (id === undefined) {
    id = c.nextId++;
    c.ids.set(o, id);
  }
  return id;
}

/** A uniform buffer holding `values`, made once per distinct content and device. */
function uniformBuffer(b: WebGpuInternals, c: DeviceCaches, values: Scalars[]): GpuBuffer {
  let key = "";
  for (const v of values) key += "i" in v ? `i${v.i},` : `f${v.f},`;
  let buf = c.uniforms.get(key);
  if (!buf) {
    const bytes = Math.max(16, Math.ceil((values.length * 4) / 16) * 16);
    const data = new ArrayBuffer(bytes);
    const ints = new Int32Array(data);
    const floats = new Float32Array(data);
    values.forEach((v, i) => {
      if ("i" in v) ints[i] = v.i;
      else floats[i] = v.f;
    });
    buf = b.device.createBuffer({
      size: bytes,
      usage: GPU_USAGE.UNIFORM | GPU_USAGE.COPY_DST,
    });
    b.queue.writeBuffer(buf, 0, data);
    if (c.uniforms.size >= CACHE_LIMIT) c.uniforms.clear();
    c.uniforms.set(key, buf);
  }
  return buf;
}

/** Workgroups for `groups` flat workgroups, folded into 2-D past the per-dimension limit. */
export function foldGroups(b: WebGpuInternals, groups: number): [number, number, number] {
  const limit = b.device.limits.maxComputeWorkgroupsPerDimension;
  const g = Math.max(1, groups);
  if (g <= limit) return [g, 1, 1];
  return [limit, Math.ceil(g / limit), 1];
}

/** One dispatch as {@link encode} resolved it: what encode-plan.ts records and replays. */
export interface ResolvedDispatch {
  key: string;
  p: GpuPipeline;
  uniforms: GpuBuffer;
  views: View[];
  workgroups: [number, number, number];
}

/** Set by encode-plan.ts while it records a kernel's dispatches. */
let recorder: ((d: ResolvedDispatch) => void) | null = null;

/** Watch every dispatch {@link encode} records (null: stop). */
export function setEncodeRecorder(r: ((d: ResolvedDispatch) => void) | null): void {
  recorder = r;
}

/**
 * Record one dispatch of the shader `key` (built by `code` on first use; bindings 0…n−1 the
 * `views`, binding n the uniforms) in tfjs's open compute pass.
 */
export function encode(
  b: WebGpuInternals,
  key: string,
  code: () => string,
  views: View[],
  uniforms: Scalars[],
  workgroups: [number, number, number],
): void {
  const c = cachesOf(b);
  const p: GpuPipeline = pipeline(b, key, code);
  const ub = uniformBuffer(b, c, uniforms);
  recorder?.({ key, p, uniforms: ub, views, workgroups });
  issueResolved(b, key, p, ub, views, workgroups);
}

/**
 * Throw if a view is larger than one storage binding may be on this device. WebGPU reports that
 * only asynchronously (the bind group is invalid, its dispatches do nothing, and a kernel call
 * after the check fails: flat-buffers.ts's `bindGroup`), so a step would first run with those
 * dispatches skipped. The adapter's limit can be as low as WebGPU's default, 128 MiB (lavapipe's):
 * a ViT-S/16's fc1 activations at batch 64 (two views) are 155 MB, and the flat AdamW's buffers of
 * a SiT ViT-S (42 M parameters with its heads) 167 MB.
 */
export function checkBindingSizes(b: WebGpuInternals, key: string, views: View[]): void {
  const limit = b.device.limits.maxStorageBufferBindingSize;
  for (const [i, v] of views.entries())
    if (v.size * 4 > limit)
      throw new ShapeError(
        `@sit/kernels: shader "${key}" binds ${v.size} floats (${v.size * 4} bytes) at binding ${i}, above this adapter's maxStorageBufferBindingSize of ${limit} bytes: an adapter with a larger limit is needed, or, where the binding is an activation (batch · tokens · width floats), a smaller batch`,
      );
}

/**
 * The bind group of `views` and uniforms `ub` for pipeline `p`, kept per (pipeline, uniforms,
 * buffer ranges); its binding sizes checked when it is made ({@link checkBindingSizes}).
 */
export function groupFor(
  b: WebGpuInternals,
  key: string,
  p: GpuPipeline,
  ub: GpuBuffer,
  views: View[],
): unknown {
  const c = cachesOf(b);
  let gkey = `${idOf(c, p)}|${idOf(c, ub)}`;
  for (const v of views) gkey += `|${idOf(c, v.buffer)}:${v.offset}:${v.size}`;
  let group = c.groups.get(gkey);
  if (!group) {
    checkBindingSizes(b, key, views);
    const entries = views.map((v, i) => ({
      binding: i,
      resource: { buffer: v.buffer, offset: v.offset * 4, size: Math.max(4, v.size * 4) },
    }));
    entries.push({ binding: views.length, resource: { buffer: ub, offset: 0, size: ub.size } });
    group = bindGroup(b, key, p, entries);
    if (c.groups.size >= CACHE_LIMIT) c.groups.clear();
    c.groups.set(gkey, group);
  }
  return group;
}

/**
 * Issue one resolved dispatch: its bind group from {@link groupFor}, and under a GPU profile
 * (gpu-profile.ts) in a pass of its own.
 */
export function issueResolved(
  b: WebGpuInternals,
  key: string,
  p: GpuPipeline,
  ub: GpuBuffer,
  views: View[],
  workgroups: [number, number, number],
): void {
  const group = groupFor(b, key, p, ub, views);
  if (gpuProfiling.recorder) {
    gpuProfiling.recorder.dispatch(key, p, group, workgroups);
    return;
  }
  issueDispatch(b, p, group, workgroups);
}

/**
 * Dispatches after which the pending commands are submitted. tfjs frees a disposed tensor's buffer
 * only at the next submit (commands not yet submitted may use it), so the buffers of every
 * tensor disposed since the last submit stay allocated until then: a SiT step encoded as one
 * submit peaked at 1.10 GB of GPU memory in use at batch 2 on lavapipe, against 0.81 GB with a
 * submit every ≈ 100 dispatches. tfjs submits after 15 of its own programs; a submit costs host
 * time (≈ 0.5 ms on lavapipe), so this package's far fewer, larger dispatches submit less often.
 */
const SUBMIT_EVERY = 96;

/** Record one dispatch of pipeline `p` with bind group `group` in tfjs's open compute pass. */
export function issueDispatch(
  b: WebGpuInternals,
  p: GpuPipeline,
  group: unknown,
  workgroups: [number, number, number],
): void {
  b.ensureCommandEncoderReady();
  if (!b.computePassEncoder)
    b.computePassEncoder = (
      b.commandEncoder as unknown as {
        beginComputePass(): NonNullable<typeof b.computePassEncoder>;
      }
    ).beginComputePass();
  const pass = b.computePassEncoder;
  pass.setPipeline(p);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(...workgroups);
  b.dispatchCountInPass++;
  noteRawDispatch();
  if (b.dispatchCountInPass >= SUBMIT_EVERY) {
    b.endComputePassEncoder();
    b.submitQueue();
  }
}

/** `n` floats rounded up to a whole number of {@link VIEW_ALIGN}s (where the next view may start). */
export const alignFloats = (n: number) => Math.ceil(n / VIEW_ALIGN) * VIEW_ALIGN;

/** Views of the parts of a flat tensor laid out as `sizes` (in that order). */
export function carve<K extends string>(
  b: WebGpuInternals,
  t: tf.TensorInfo,
  sizes: Record<K, number>,
): Record<K, View> {
  return carveView(viewOf(b, t, 0, totalOf(sizes)), sizes);
}

/** Views of the parts of `base` laid out as `sizes` ({@link carve} over a range of a buffer). */
export function carveView<K extends string>(base: View, sizes: Record<K, number>): Record<K, View> {
  const out = {} as Record<K, View>;
  let offset = base.offset;
  for (const k of Object.keys(sizes) as K[]) {
    out[k] = { buffer: base.buffer, offset, size: sizes[k] };
    offset += alignFloats(sizes[k]);
  }
  return out;
}

/** Floats of a flat tensor laid out as `sizes` (each part starting aligned, as {@link carve} lays them). */
export function totalOf(sizes: Record<string, number>): number {
  return Object.values(sizes).reduce((p, q) => p + alignFloats(q), 0);
}
