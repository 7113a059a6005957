import * as tf from "@tensorflow/tfjs";
import { dropMirror } from "./mirrors";

// Direct use of tfjs-backend-webgpu's device, command encoder and buffers (4.22, see its
// backend_webgpu.js), for kernels that tfjs's program generator cannot express: several
// read-write buffers in one dispatch, and gathering/scattering many tensors with
// `copyBufferToBuffer`. Everything is recorded on tfjs's own command encoder, in tfjs's order,
// and every buffer used is marked as owned by the pending command buffer (as tfjs does for its
// own programs), so a tensor disposed before the next submit keeps its buffer until then.

/** The parts of a GPUBuffer used here. */
export interface GpuBuffer {
  size: number;
}

interface GpuPass {
  setPipeline(p: unknown): void;
  setBindGroup(i: number, g: unknown): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}

interface GpuEncoder {
  copyBufferToBuffer(
    src: GpuBuffer,
    srcOffset: number,
    dst: GpuBuffer,
    dstOffset: number,
    size: number,
  ): void;
  beginComputePass(desc?: object): GpuPass;
}

/**
 * WebGPU's GPUBufferUsage and GPUMapMode bits (spec values), for the buffers this package makes
 * itself: Node has no GPUBufferUsage global until Dawn is loaded, and a bundle must not rely on it.
 */
export const GPU_USAGE = {
  MAP_READ: 0x01,
  COPY_SRC: 0x04,
  COPY_DST: 0x08,
  UNIFORM: 0x40,
  STORAGE: 0x80,
  QUERY_RESOLVE: 0x200,
} as const;
export const GPU_MAP_MODE_READ = 0x01;

export interface GpuPipeline {
  getBindGroupLayout(i: number): unknown;
}

interface GpuDevice {
  pushErrorScope(filter: "validation"): void;
  popErrorScope(): Promise<{ message: string } | null>;
  createShaderModule(desc: { code: string; label?: string }): unknown;
  createComputePipeline(desc: object): GpuPipeline;
  createBindGroup(desc: object): unknown;
  createBuffer(desc: { size: number; usage: number }): GpuBuffer;
  limits: {
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
    maxStorageBufferBindingSize: number;
  };
}

/** The internals of tfjs's `WebGPUBackend` used here (tfjs-backend-webgpu 4.22). */
export interface WebGpuInternals {
  device: GpuDevice;
  queue: {
    writeBuffer(buffer: GpuBuffer, offset: number, data: ArrayBuffer | ArrayBufferView): void;
  };
  commandEncoder: GpuEncoder | null;
  computePassEncoder: GpuPass | null;
  dispatchCountInPass: number;
  submitQueue(): void;
  tensorMap: {
    get(dataId: object): { values: unknown; resource: unknown; shape: number[]; dtype: string };
    has(dataId: object): boolean;
  };
  commandQueueOwnedIds: WeakSet<object>;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  uploadToGPU(dataId: object): void;
  makeTensorInfo(
    shape: number[],
    dtype: "float32" | "int32",
    values?: Float32Array | Int32Array,
  ): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  bufferManager: {
    acquireBuffer(size: number, usage: number): GpuBuffer;
    releaseBuffer(buffer: GpuBuffer): void;
  };
  makeUniforms(uniforms: { type: "float32" | "int32" | "uint32"; data: number[] }[]): {
    offset: number;
    size: number;
    buffer: unknown;
  };
}

/** Check that `backend` is tfjs's WebGPU backend with the internals this file relies on. */
export function webgpuInternals(backend: unknown): WebGpuInternals {
  const b = backend as Partial<WebGpuInternals>;
  if (
    !b?.device ||
    typeof b.ensureCommandEncoderReady !== "function" ||
    typeof b.endComputePassEncoder !== "function" ||
    typeof b.uploadToGPU !== "function" ||
    typeof b.makeUniforms !== "function" ||
    !b.tensorMap ||
    !(b.commandQueueOwnedIds instanceof WeakSet)
  )
    throw new Error(
      "@sit/kernels: the webgpu backend does not expose the internals of tfjs-backend-webgpu 4.22 that the flat kernels use",
    );
  return b as WebGpuInternals;
}

/** Storage-binding offsets must be multiples of 256 bytes (WebGPU's largest allowed alignment). */
export const VIEW_ALIGN = 64;

const GPU_STORAGE_COPY = GPU_USAGE.STORAGE | GPU_USAGE.COPY_SRC | GPU_USAGE.COPY_DST;

/**
 * Put a tensor's host values on the GPU with one `queue.writeBuffer` into a buffer of tfjs's pool.
 * tfjs's own upload (`uploadToGPU`) maps a fresh staging buffer, copies it on the command encoder
 * and destroys it after the submit: a buffer created and destroyed, and the compute pass ended,
 * per upload (a SiT step uploads its drop-path factors, GMML plans and hyperparameters: 27 at
 * batch 2, ≈ 0.1 ms each on lavapipe). The write is ordered before every command submitted after
 * it, and a pool buffer is free only once no pending command uses it, so no command sees the
 * wrong contents. Other dtypes take tfjs's path.
 */
function upload(b: WebGpuInternals, data: ReturnType<WebGpuInternals["tensorMap"]["get"]>): void {
  const values = data.values as ArrayLike<number> | null;
  const n = data.shape.reduce((p, q) => p * q, 1);
  const float = data.dtype === "float32";
  if (!values || n === 0 || !(float || data.dtype === "int32" || data.dtype === "bool")) return;
  const typed =
    (float ? values instanceof Float32Array : values instanceof Int32Array) && values.length === n
      ? (values as Float32Array | Int32Array)
      : float
        ? Float32Array.from(values)
        : Int32Array.from(values);
  const buffer = b.bufferManager.acquireBuffer(n * 4, GPU_STORAGE_COPY);
  b.queue.writeBuffer(buffer, 0, typed);
  data.resource = buffer;
  data.values = null;
}

/** Marks the resources {@link bufferOf} has seen to be GPU buffers. */
const SEEN = Symbol("sitGpuBuffer");

/** Set by step-capture.ts while it records a step: each tensor whose buffer is bound. */
let bufferWatch: ((dataId: object, buffer: GpuBuffer) => void) | null = null;

/** Watch the tensors whose buffers {@link bufferOf} hands out (null: stop). */
export function watchBuffers(watch: ((dataId: object, buffer: GpuBuffer) => void) | null): void {
  bufferWatch = watch;
}

/** The GPU buffer of a tensor (uploading host values first), owned by the pending commands. */
export function bufferOf(b: WebGpuInternals, t: tf.TensorInfo): GpuBuffer {
  const data = b.tensorMap.get(t.dataId);
  if (data.resource == null) {
    upload(b, data);
    b.uploadToGPU(t.dataId);
  }
  b.commandQueueOwnedIds.add(t.dataId);
  const resource = data.resource as GpuBuffer | null;
  if (bufferWatch && resource) bufferWatch(t.dataId, resource);
  // Checked once per buffer: `size` is a getter into the WebGPU implementation (Dawn's bindings in
  // Node), and this runs ≈ 1,700 times per SiT step (so a mark on the buffer, not a weak set).
  if (resource && (resource as { [SEEN]?: true })[SEEN]) return resource;
  if (!resource || typeof resource.size !== "number")
    throw new Error("@sit/kernels: a tensor of the flat kernels is not held in a GPU buffer");
  (resource as { [SEEN]?: true })[SEEN] = true;
  return resource;
}

type TensorData = ReturnType<WebGpuInternals["tensorMap"]["get"]>;

/** `tensorMap.get` as tfjs made it, per backend whose own is wrapped (write-back.ts). */
const rawGets = new WeakMap<object, (dataId: object) => TensorData>();

/** Record `b`'s unwrapped `tensorMap.get` (write-back.ts wraps it). */
export function setRawTensorData(b: WebGpuInternals, get: (dataId: object) => TensorData): void {
  rawGets.set(b, get);
}

/**
 * A tensor's data in tfjs's backend for what does not read its buffer's values (its reference
 * count, its cached host values): without the deferred write-back that `tensorMap.get` records.
 */
export function tensorDataOf(b: WebGpuInternals, dataId: object): TensorData {
  const get = rawGets.get(b);
  return get ? get(dataId) : b.tensorMap.get(dataId);
}

/**
 * After writing a tensor's buffer in place, or its values' range of a flat buffer: drop any host
 * copy tfjs cached when it was read, and any mirror of it (mirrors.ts).
 */
export function markWritten(b: WebGpuInternals, t: tf.TensorInfo): void {
  tensorDataOf(b, t.dataId).values = null;
  dropMirror(t);
}

/**
 * A tensor of shape [1] on a buffer of `elements` floats from tfjs's pool (released to the pool by
 * size when disposed, as any tensor's): the fused block's saved workspace. tfjs's backprop hands a
 * host array of zeros to the gradient of every output without one, sized by the output's shape:
 * for a full-size workspace that is tens of MB of memset and GC per step (measured ≈ 75 ms at
 * batch 2 on lavapipe), for this handle one float. Its bytes show in the backend's GPU memory, not
 * in `tf.memory().numBytes`.
 */
export function bufferHandle(b: WebGpuInternals, elements: number): tf.TensorInfo {
  const info = b.makeTensorInfo([1], "float32");
  b.tensorMap.get(info.dataId).resource = b.bufferManager.acquireBuffer(
    elements * 4,
    GPU_STORAGE_COPY,
  );
  return info;
}

const scratch = new WeakMap<object, Map<string, tf.TensorInfo>>();
const persistent = new WeakSet<object>();

/** Whether `buffer` lives as long as the backend ({@link scratchBuffer}'s): a recorded plan may keep it. */
export function isPersistentBuffer(buffer: GpuBuffer): boolean {
  return persistent.has(buffer);
}

/**
 * A kernel's temporary of `elements` floats for `use` (a name per kind of temporary, so that two
 * held at once never share a buffer): one buffer per use and size, kept for the backend's life
 * (never dispose it). Why: tfjs frees a buffer that commands not yet submitted use only at the next
 * submit, so a fresh temporary per kernel call stays allocated until then, one per call: the fused
 * blocks' (an unsaved forward's workspace, the backward's gradient buffers) and the split-K
 * GEMMs' slices were ≈ 3.4 + 3.4 + 1.1 GB at ViT-Tiny/4 batch 256. Sharing one is safe: the
 * dispatches run in order on one queue, each seeing the writes of those before it.
 */
export function scratchBuffer(b: WebGpuInternals, use: string, elements: number): tf.TensorInfo {
  let sizes = scratch.get(b);
  if (!sizes) {
    sizes = new Map();
    scratch.set(b, sizes);
  }
  const key = `${use}:${elements}`;
  let t = sizes.get(key);
  if (!t) {
    t = bufferHandle(b, elements);
    sizes.set(key, t);
    persistent.add(b.tensorMap.get(t.dataId).resource as GpuBuffer);
  }
  return t;
}

/**
 * Per tensor, whether no other tensor shares its data (tfjs's reference count is 1), so that a
 * flat kernel may write its new values into its own buffer (the flat AdamW and EMA): the same
 * buffer every step keeps the bind groups of the kernels that read it. A clone or a saved handle
 * must keep its values, so a shared buffer is never written.
 */
export function ownBuffers(tensors: readonly tf.Tensor[]): boolean[] {
  const b = tf.backend() as unknown as WebGpuInternals;
  return tensors.map(
    (t) => (tensorDataOf(b, t.dataId) as unknown as { refCount: number }).refCount === 1,
  );
}

/** A new backend tensor (not an engine tensor) with a GPU buffer, optionally initialised. */
export function newTensorInfo(
  b: WebGpuInternals,
  shape: number[],
  values?: Float32Array | Int32Array,
): tf.TensorInfo {
  const info = b.makeTensorInfo(shape, values instanceof Int32Array ? "int32" : "float32", values);
  bufferOf(b, info);
  return info;
}

/** Record `copyBufferToBuffer` of `count` float32/int32 elements (offsets in elements). */
export function copyElements(
  b: WebGpuInternals,
  src: GpuBuffer,
  srcOffset: number,
  dst: GpuBuffer,
  dstOffset: number,
  count: number,
): void {
  if (count === 0) return;
  b.ensureCommandEncoderReady();
  b.endComputePassEncoder();
  (b.commandEncoder as GpuEncoder).copyBufferToBuffer(
    src,
    srcOffset * 4,
    dst,
    dstOffset * 4,
    count * 4,
  );
}

const pipelines = new WeakMap<object, Map<string, GpuPipeline>>();
let rawDispatches = 0;

/** Count one dispatch recorded outside tfjs's `runWebGPUProgram` (see {@link rawDispatchCount}). */
export function noteRawDispatch(): void {
  rawDispatches++;
}

/** Dispatches recorded by this package outside tfjs's `runWebGPUProgram` (for counting). */
export function rawDispatchCount(): number {
  return rawDispatches;
}

/** Shaders whose compilation failed (by key), and errors not yet thrown to a caller. */
const shaderErrors = new Map<string, Error>();
const unreported: Error[] = [];
const pendingChecks = new Set<Promise<void>>();

function throwShaderError(key: string): void {
  const first = unreported.shift();
  if (first) throw first;
  const own = shaderErrors.get(key);
  if (own) throw own;
}

/**
 * The compute pipeline of `code` (entry point `main`; a function of it is called only on the
 * first use of `key`, so that callers need not build the WGSL text per call), created once per
 * device and key. WebGPU
 * reports WGSL compile errors asynchronously (an error scope, resolved after the call that
 * created the pipeline has returned), so a broken shader cannot fail its first call; it fails
 * every later kernel call of this package (the first error once, then every call of that shader)
 * with an Error naming the shader and carrying the compiler's message, and
 * {@link checkWebgpuShaders} rejects with it — instead of a log line and garbage results.
 */
export function pipeline(
  b: WebGpuInternals,
  key: string,
  code: string | (() => string),
): GpuPipeline {
  throwShaderError(key);
  let cache = pipelines.get(b.device);
  if (!cache) {
    cache = new Map();
    pipelines.set(b.device, cache);
  }
  let p = cache.get(key);
  if (!p) {
    b.device.pushErrorScope("validation");
    const text = typeof code === "string" ? code : code();
    const module = b.device.createShaderModule({ code: text, label: key });
    p = b.device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: "main" },
      label: key,
    });
    const check: Promise<void> = b.device.popErrorScope().then((err) => {
      pendingChecks.delete(check);
      if (!err) return;
      const e = new Error(`@sit/kernels: WGSL shader "${key}" failed to compile: ${err.message}`);
      shaderErrors.set(key, e);
      unreported.push(e);
    });
    pendingChecks.add(check);
    cache.set(key, p);
  }
  return p;
}

/**
 * Wait until every shader compiled so far has been checked, and throw (once) the first compile
 * error not yet thrown by a kernel call. Cheap; call it after a first step or in tests.
 */
export async function checkWebgpuShaders(): Promise<void> {
  await Promise.all([...pendingChecks]);
  const first = unreported.shift();
  if (first) throw first;
}

/** Wait until every shader compiled so far has been checked (errors stay pending). */
export async function settleShaderChecks(): Promise<void> {
  await Promise.all([...pendingChecks]);
}

/** Shader keys whose first bind group was checked against the pipeline's layout, per device. */
const checkedBindings = new WeakMap<object, Set<string>>();

/** Bind-group layouts per pipeline. */
const layouts = new WeakMap<GpuPipeline, unknown>();

/** The buffers each bind group made by {@link bindGroup} binds (step-capture.ts reads them). */
const groupBuffers = new WeakMap<object, GpuBuffer[]>();

function noteGroup(group: unknown, entries: object[]): unknown {
  const buffers: GpuBuffer[] = [];
  for (const e of entries as { resource: { buffer?: GpuBuffer } }[])
    if (e.resource.buffer) buffers.push(e.resource.buffer);
  groupBuffers.set(group as object, buffers);
  return group;
}

/** The buffers a bind group of {@link bindGroup} binds, or undefined for any other group. */
export function buffersOfGroup(group: object): GpuBuffer[] | undefined {
  return groupBuffers.get(group);
}

/**
 * A bind group of `key`'s pipeline. The first one per device and key is created inside an error
 * scope: a binding the shader does not use is missing from the layout WebGPU derives from the
 * shader, and the bind group is then invalid — reported asynchronously, like a compile error, and
 * otherwise only a log line while the dispatch silently does nothing (outputs stay zero). The
 * mismatch fails the shader's later calls as {@link pipeline} fails them for a compile error.
 */
export function bindGroup(
  b: WebGpuInternals,
  key: string,
  p: GpuPipeline,
  entries: object[],
): unknown {
  let checked = checkedBindings.get(b.device);
  if (!checked) {
    checked = new Set();
    checkedBindings.set(b.device, checked);
  }
  // (Each getBindGroupLayout call makes a new wrapper object in Dawn's bindings: once per pipeline.)
  let layout = layouts.get(p);
  if (!layout) {
    layout = p.getBindGroupLayout(0);
    layouts.set(p, layout);
  }
  const desc = { layout, entries };
  if (checked.has(key)) return noteGroup(b.device.createBindGroup(desc), entries);
  checked.add(key);
  b.device.pushErrorScope("validation");
  const group = noteGroup(b.device.createBindGroup(desc), entries);
  const check: Promise<void> = b.device.popErrorScope().then((err) => {
    pendingChecks.delete(check);
    // A shader that failed to compile fails its bind group too: its compile error (checked
    // first, scopes resolve in order) is the one to report.
    if (!err || shaderErrors.has(key)) return;
    const e = new Error(
      `@sit/kernels: WGSL shader "${key}": its bindings do not match the shader's (a binding it does not use, or of the wrong type): ${err.message}`,
    );
    shaderErrors.set(key, e);
    unreported.push(e);
  });
  pendingChecks.add(check);
  return group;
}

/** One compute dispatch of a WGSL shader (entry point `main`). */
export interface Dispatch {
  /** Cache key of the shader. */
  key: string;
  code: string;
  /** Storage buffers at bindings 0…n−1, then the uniforms at binding n. */
  buffers: GpuBuffer[];
  uniforms: { type: "float32" | "int32" | "uint32"; data: number[] }[];
  workgroups: number;
}

/**
 * Record dispatches in one compute pass on tfjs's command encoder (after closing tfjs's open
 * pass; storage writes of one dispatch are visible to the next). Uniform buffers come from
 * tfjs's `makeUniforms`, which recycles them after the next submit.
 */
export function dispatchAll(b: WebGpuInternals, dispatches: Dispatch[]): void {
  const bindGroups = dispatches.map((d) => {
    const p = pipeline(b, d.key, d.code);
    const entries = d.buffers.map((buffer, i) => ({ binding: i, resource: { buffer } }));
    entries.push({ binding: d.buffers.length, resource: b.makeUniforms(d.uniforms) as never });
    return { p, group: bindGroup(b, d.key, p, entries) };
  });
  b.ensureCommandEncoderReady();
  b.endComputePassEncoder();
  const pass = (b.commandEncoder as GpuEncoder).beginComputePass();
  dispatches.forEach((d, i) => {
    pass.setPipeline(bindGroups[i].p);
    pass.setBindGroup(0, bindGroups[i].group);
    pass.dispatchWorkgroups(d.workgroups, 1, 1);
    rawDispatches++;
  });
  pass.end();
}

/** Workgroups of a grid-stride loop over `n` elements with `threads` per workgroup. */
export function gridWorkgroups(b: WebGpuInternals, n: number, threads: number): number {
  return Math.max(
    1,
    Math.min(Math.ceil(n / threads), b.device.limits.maxComputeWorkgroupsPerDimension),
  );
}
