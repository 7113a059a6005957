import type * as tf from "@tensorflow/tfjs";
import { ConfigError, invalidArgument } from "../errors";

// Seams through which a backend package (e.g. @sit/kernels' WebGPU kernels) plugs a whole-model
// optimiser or EMA update into @sit/core and @sit/momentum without them depending on it. With no
// registration for the active backend, the callers keep their portable tfjs-op paths.

/** How {@link AdamW}'s parameters are packed into one flat buffer for a fused update. */
export interface FlatAdamWLayout {
  /** Element offset of each tensor (flat order), plus the total as the last entry. */
  offsets: Int32Array;
  /** Parameter-group index of each tensor. */
  groupOf: Int32Array;
  /** Number of parameter groups. */
  numGroups: number;
}

/** Everything one fused AdamW step needs; tensors are in the layout's flat order. */
export interface FlatAdamWStepArgs {
  /** Current parameter values (the Variables). */
  params: tf.Tensor[];
  /** Which `params` changed since the last step (their values must be re-read into `flatParams`). */
  stale: boolean[];
  grads: tf.Tensor[];
  /** Flat float32 buffers owned by the optimiser: parameters, first and second moments (updated in place). */
  flatParams: tf.Tensor1D;
  m: tf.Tensor1D;
  v: tf.Tensor1D;
  /** Per group: `lr` (already scaled) and weight decay. */
  groups: { lr: number; weightDecay: number }[];
  beta1: number;
  beta2: number;
  eps: number;
  /** 1-based step (bias correction). */
  step: number;
  clipPerTensor: number | null;
  clipGlobalNorm: number | null;
  /**
   * Mixed precision: `grads` are of a loss multiplied by a scale kept on the device; the kernel
   * unscales them, skips the whole update when any is inf/NaN and updates the scale
   * ({@link FlatLossScaleArgs}). Only for a kernel with `lossScale: true`.
   */
  lossScale?: FlatLossScaleArgs;
}

/**
 * A dynamic loss scale (PyTorch GradScaler) that lives on the device, so that a step decides to
 * skip without reading anything back: `state` = float32 `[scale, growth tracker, found inf of the
 * last step (0/1), skipped steps so far]` and `scale` (the same scale as a scalar, which the loss is
 * multiplied by) are both updated in place by the kernel. A skipped step does not count for Adam's
 * bias correction (PyTorch's `state_steps` stay put), so the optimiser's step count is only known
 * up to the skips of steps whose state has not been read yet: `knownSkips` is the skip count of
 * the last state read, `unresolved` the number of steps launched since then; the kernel gets the
 * bias corrections of every possible effective step and picks on the device.
 */
export interface FlatLossScaleArgs {
  state: tf.Tensor;
  scale: tf.Tensor;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  knownSkips: number;
  unresolved: number;
}

/** A flag on the device: `tensor[index] != 0` means skip (e.g. a loss scale's found-inf). */
export interface FlatSkipFlag {
  tensor: tf.Tensor;
  index: number;
}

/**
 * A fused AdamW for one backend: `prepare` gets the static layout once (and may cache device
 * tables for it; `dispose` releases them); `step` performs clipping, decoupled weight decay and
 * the Adam update of every parameter, updates `flatParams`, `m` and `v` in place and returns the
 * new parameter tensors (parameter shapes, flat order) for the optimiser to assign. A kernel that
 * updates the parameters' own buffers sets `inPlace`: the optimiser then keeps no flat copy of
 * them (`flatParams` is empty), and an entry is `null` where the parameter was written in place.
 */
export interface FlatAdamWKernel {
  inPlace?: boolean;
  /**
   * Whether `step` takes `lossScale`; it then returns one more tensor after the parameters: a copy
   * of the loss scale's `state` after the step (for a late read; the caller disposes it).
   */
  lossScale?: boolean;
  prepare(layout: FlatAdamWLayout): {
    step(args: FlatAdamWStepArgs): (tf.Tensor | null)[];
    dispose(): void;
  };
}

/**
 * A fused EMA for one backend: returns `momentum·teacher + (1 − momentum)·student` for every
 * tensor: a new tensor of the teacher's shape, or `null` where the kernel wrote the teacher's own
 * buffer in place. The student is not modified. A kernel with `skipFlag: true` also takes `skip`
 * and leaves the teacher's values as they are when that flag is set on the device (a step that a
 * loss scaler skipped).
 */
export type FlatEmaKernel = ((
  teacher: tf.Tensor[],
  student: tf.Tensor[],
  momentum: number,
  skip?: FlatSkipFlag,
) => (tf.Tensor | null)[]) & { skipFlag?: boolean };

const adamwKernels = new Map<string, FlatAdamWKernel>();
const emaKernels = new Map<string, FlatEmaKernel>();

/** Register `impl` for `backend` in `map` (one per backend); returns its remover. Shared by every seam. */
export function registerForBackend<K>(
  what: string,
  map: Map<string, K>,
  backend: string,
  impl: K,
): () => void {
  if (typeof backend !== "string" || backend.length === 0)
    throw invalidArgument("backend", backend, "a tfjs backend name such as 'webgpu'");
  if (map.has(backend))
    throw new ConfigError(`a fused ${what} is already registered for backend '${backend}'`);
  map.set(backend, impl);
  return () => {
    if (map.get(backend) === impl) map.delete(backend);
  };
}

/**
 * Register a fused flat-buffer AdamW for `backend`; {@link AdamW}'s `device` mode uses it whenever
 * that backend is active. Returns a function that removes the registration.
 */
export function registerFlatAdamWKernel(backend: string, kernel: FlatAdamWKernel): () => void {
  if (!kernel || typeof kernel.prepare !== "function")
    throw invalidArgument("kernel", kernel, "{ prepare(layout) }");
  return registerForBackend("AdamW", adamwKernels, backend, kernel);
}

/** Register a fused EMA update for `backend` (used by `@sit/momentum`'s EmaTeacher). */
export function registerFlatEmaKernel(backend: string, kernel: FlatEmaKernel): () => void {
  if (typeof kernel !== "function") throw invalidArgument("kernel", kernel, "a function");
  return registerForBackend("EMA", emaKernels, backend, kernel);
}

/** The fused AdamW registered for `backend`, if any. */
export function flatAdamWKernel(backend: string): FlatAdamWKernel | undefined {
  return adamwKernels.get(backend);
}

/** The fused EMA registered for `backend`, if any. */
export function flatEmaKernel(backend: string): FlatEmaKernel | undefined {
  return emaKernels.get(backend);
}
