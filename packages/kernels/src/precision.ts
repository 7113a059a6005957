import * as tf from "@tensorflow/tfjs";
import { ConfigError } from "@sit/core";

// Mixed precision as PyTorch's autocast does it, for the kernels of this package: while a
// `mixed-f16` region runs (`withPrecision`), the GEMMs of the fused transformer block and of
// `linear` / `fusedLinear` on webgpu take f16 operands with f32 accumulation and round their
// results to f16; LayerNorm, softmax (inside attention), losses, reductions and the residual
// stream stay f32 — autocast's lists (GEMMs and attention products in f16; layer_norm, softmax,
// losses and sums in f32). Parameters stay f32 (master weights); the gradients of the f16 ops come
// out rounded to f16, which is where a loss scaler finds overflow. The flag is read when a kernel
// is called and recorded in its attributes, so the backward follows its forward's precision.

/** Numeric precision of a training step. */
export type Precision = "f32" | "mixed-f16";

/** The precisions, in the order an error message lists them. */
export const PRECISIONS: readonly Precision[] = ["f32", "mixed-f16"];

let active: Precision = "f32";

/** The precision of the kernels called now (`f32` outside {@link withPrecision}). */
export function activePrecision(): Precision {
  return active;
}

/** Whether the webgpu kernels called now take their f16 variants. */
export function halfActive(): boolean {
  return active === "mixed-f16" && tf.getBackend() === "webgpu";
}

/**
 * Check a precision setting: `value` must be one of {@link PRECISIONS}, and `mixed-f16` needs the
 * webgpu backend on an adapter with `shader-f16` (checked against the active backend). `option`
 * names the setting in the error (a ConfigError naming the option, the value, the backend or
 * adapter, and what is expected).
 */
export function checkPrecision(option: string, value: unknown): Precision {
  if (!PRECISIONS.includes(value as Precision))
    throw new ConfigError(
      `${option}: expected one of ${PRECISIONS.map((p) => JSON.stringify(p)).join(", ")}, got ${JSON.stringify(value)}`,
    );
  if (value === "mixed-f16") assertMixedPrecision(option);
  return value as Precision;
}

/**
 * Run `fn` (synchronous: a forward and its gradients) with `precision` active, restoring the
 * previous one afterwards. `mixed-f16` is checked first ({@link checkPrecision}).
 */
export function withPrecision<T>(precision: Precision, fn: () => T): T {
  const previous = active;
  active = checkPrecision("precision", precision);
  try {
    return fn();
  } finally {
    active = previous;
  }
}

/** Whether tfjs's webgpu device has `shader-f16` (requested by @sit/core's start-up when offered). */
export function webgpuHasShaderF16(backend: unknown = tf.backend()): boolean {
  const device = (backend as { device?: { features?: { has(f: string): boolean } } }).device;
  return device?.features?.has("shader-f16") === true;
}

/**
 * Throw unless the active backend can run mixed precision (webgpu with `shader-f16`); `option`
 * names the setting that asked for it (e.g. `precision`), for the message.
 */
export function assertMixedPrecision(option = "precision"): void {
  const name = tf.getBackend();
  if (name !== "webgpu")
    throw new ConfigError(
      `${option}: "mixed-f16" needs the webgpu backend with an adapter that has the shader-f16 feature, but the backend is ${name}; use "f32" there`,
    );
  if (!webgpuHasShaderF16())
    throw new ConfigError(
      `${option}: "mixed-f16" needs a WebGPU adapter with the shader-f16 feature; this adapter's device has none (${adapterName()}); use "f32"${nvidiaHint()}`,
    );
}

/** Dawn hides shader-f16 on NVIDIA's Vulkan driver unless a toggle asks for it (Node only). */
function nvidiaHint(): string {
  const isNode =
    typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
      ?.node === "string";
  return isNode && /nvidia/i.test(adapterName())
    ? ", or under Node start Dawn with SIT_DAWN_TOGGLES=vulkan_enable_f16_on_nvidia (Dawn offers shader-f16 on NVIDIA's Vulkan driver only then)"
    : "";
}

function adapterName(): string {
  const info = (tf.backend() as { adapterInfo?: { vendor?: string; architecture?: string } })
    .adapterInfo;
  return [info?.vendor, info?.architecture].filter(Boolean).join(" ") || "unknown adapter";
}
