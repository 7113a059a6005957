import type { KernelName, KernelSignatures } from "../registry";
import { registerKernelOverride } from "../registry";
import {
  registerAttentionKernels,
  webgpuMultiHeadAttention,
  webgpuPackedSelfAttention,
} from "./attention";
import { registerGeluKernels, webgpuGelu } from "./gelu";
import { registerLayerNormKernels, webgpuLayerNorm } from "./layer-norm";
import { webgpuLinear } from "./linear";

/**
 * The webgpu backend's kernels behind the seam: WGSL kernels registered with tfjs's own
 * `registerKernel` for the `webgpu` backend (LayerNorm, exact GELU, packed attention, each with a
 * registered gradient that runs a WGSL backward kernel), and a `linear` on the WGSL GEMM (one
 * dispatch forward; dx and dW with the bias gradient fused, two backward). Each is tested against
 * `portableKernels` on the cpu backend.
 */
export const webgpuKernels: Readonly<Partial<KernelSignatures>> = Object.freeze({
  linear: webgpuLinear,
  layerNorm: webgpuLayerNorm,
  gelu: webgpuGelu,
  multiHeadAttention: webgpuMultiHeadAttention,
  packedSelfAttention: webgpuPackedSelfAttention,
});

let removeAll: (() => void) | null = null;

/**
 * Register (`true`, the state after importing this package) or remove (`false`) the built-in
 * webgpu overrides of {@link webgpuKernels}. Removed, the webgpu backend runs the portable
 * implementations — for comparisons and benchmarks. Idempotent. (The tfjs kernels themselves stay
 * registered; nothing calls them without the overrides.)
 */
export function setWebgpuKernels(enabled: boolean): void {
  if (enabled && !removeAll) {
    registerLayerNormKernels();
    registerGeluKernels();
    registerAttentionKernels();
    const removers = (Object.keys(webgpuKernels) as KernelName[]).map((name) =>
      registerKernelOverride(name, "webgpu", webgpuKernels[name] as never),
    );
    removeAll = () => {
      for (const r of removers) r();
    };
  } else if (!enabled && removeAll) {
    removeAll();
    removeAll = null;
  }
}

/** Whether the webgpu overrides are on (see {@link setWebgpuKernels}). */
export function webgpuKernelsEnabled(): boolean {
  return removeAll !== null;
}

// On by default: importing the package (or this module) gives models the webgpu kernels.
setWebgpuKernels(true);
