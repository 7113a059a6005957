import type * as tf from "@tensorflow/tfjs";
import { ConfigError, describeValue } from "@sit/core";

/** Result of {@link multiHeadAttention}. */
export interface AttentionResult {
  /** Attention output `[B, Nq, D]` (heads merged back, before any output projection). */
  output: tf.Tensor3D;
  /** Softmax probabilities `[B, H, Nq, Nk]`, when requested (not differentiable: for attention maps). */
  probabilities?: tf.Tensor4D;
}

/** Options of {@link multiHeadAttention}, as an override receives them (defaults filled in). */
export interface ResolvedAttentionOptions {
  numHeads: number;
  scale: number;
  returnProbabilities: boolean;
}

/**
 * The signature of every operation behind the seam. An override registered for a backend
 * receives arguments that the public function has already validated and normalised (2-D inputs
 * for `linear` and `layerNorm`, defaults filled in), and must return the same values as the
 * portable implementation (within float32 rounding) with a working gradient (through
 * `tf.customGrad`, or a tfjs kernel with a registered gradient).
 */
export interface KernelSignatures {
  /** `x [M, in] · weight [in, out] (+ bias [out])` → `[M, out]`. */
  linear: (x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor1D | null) => tf.Tensor2D;
  /** LayerNorm over the last axis of `x [M, D]` with `gamma`, `beta` `[D]`. */
  layerNorm: (x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number) => tf.Tensor2D;
  /** Exact (erf) GELU, elementwise. */
  gelu: (x: tf.Tensor) => tf.Tensor;
  /** Multi-head attention on `q [B,Nq,D]`, `k [B,Nk,D]`, `v [B,Nk,D]`. */
  multiHeadAttention: (
    q: tf.Tensor3D,
    k: tf.Tensor3D,
    v: tf.Tensor3D,
    options: ResolvedAttentionOptions,
  ) => AttentionResult;
  /** Self-attention on a packed `qkv [B,N,3D]` (q, k, v in that order along the last axis). */
  packedSelfAttention: (qkv: tf.Tensor3D, options: ResolvedAttentionOptions) => AttentionResult;
  /** `images [B,H,W,C]` → `patches [B, (H/p)·(W/p), p·p·C]`, (row, col, channel) order. */
  patchify: (images: tf.Tensor4D, patchSize: number) => tf.Tensor3D;
  /** Inverse of `patchify` for a `gridH × gridW` grid of patches. */
  unpatchify: (
    patches: tf.Tensor3D,
    patchSize: number,
    gridH: number,
    gridW: number,
  ) => tf.Tensor4D;
}

/** Name of an operation behind the seam. */
export type KernelName = keyof KernelSignatures;

const KERNEL_NAMES: readonly KernelName[] = [
  "linear",
  "layerNorm",
  "gelu",
  "multiHeadAttention",
  "packedSelfAttention",
  "patchify",
  "unpatchify",
];

const overrides = new Map<KernelName, Map<string, KernelSignatures[KernelName]>>();

/**
 * Register `impl` as the implementation of `name` whenever `backend` (a tfjs backend name such
 * as `"webgpu"` or `"wasm"`) is the active backend. The public functions of this package look the
 * override up on every call (by `tf.getBackend()`) and fall back to the portable implementation
 * when there is none, so models never change when a faster kernel appears. Returns a function
 * that removes the registration again. Registering twice for the same pair throws.
 */
export function registerKernelOverride<K extends KernelName>(
  name: K,
  backend: string,
  impl: KernelSignatures[K],
): () => void {
  if (!KERNEL_NAMES.includes(name))
    throw new ConfigError(
      `name: expected one of ${KERNEL_NAMES.join(", ")}, got ${describeValue(name)}`,
    );
  if (typeof backend !== "string" || backend.length === 0)
    throw new ConfigError(`backend: expected a tfjs backend name, got ${describeValue(backend)}`);
  if (typeof impl !== "function")
    throw new ConfigError(`impl: expected a function, got ${describeValue(impl)}`);
  let byBackend = overrides.get(name);
  if (!byBackend) {
    byBackend = new Map();
    overrides.set(name, byBackend);
  }
  if (byBackend.has(backend))
    throw new ConfigError(
      `registerKernelOverride: "${name}" already has an override for backend "${backend}"; remove it first`,
    );
  byBackend.set(backend, impl as KernelSignatures[KernelName]);
  return () => {
    if (byBackend.get(backend) === impl) byBackend.delete(backend);
  };
}

/** The registered (operation, backend) pairs, for diagnostics. */
export function listKernelOverrides(): { name: KernelName; backend: string }[] {
  const out: { name: KernelName; backend: string }[] = [];
  for (const [name, byBackend] of overrides)
    for (const backend of byBackend.keys()) out.push({ name, backend });
  return out;
}

/** The override of `name` for `backend`, if one is registered (internal dispatch). */
export function findOverride<K extends KernelName>(
  name: K,
  backend: string,
): KernelSignatures[K] | undefined {
  return overrides.get(name)?.get(backend) as KernelSignatures[K] | undefined;
}
