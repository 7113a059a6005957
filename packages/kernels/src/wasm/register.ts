import { registerFlatAdamWKernel, registerFlatEmaKernel } from "@sit/core";
import type { KernelName, KernelSignatures } from "../registry";
import { registerKernelOverride } from "../registry";
import { wasmMultiHeadAttention, wasmPackedSelfAttention } from "./attention";
import { setHeapOps } from "./heap-ops";
import { wasmFlatAdamW } from "./flat-adamw";
import { wasmFlatEma } from "./flat-ema";
import { wasmGelu } from "./gelu";
import { wasmLayerNorm } from "./layer-norm";
import { setSharingIdentity } from "./identity";
import { wasmLinear } from "./linear";
import { setHeapSlice } from "./slice";
import { setSmallProduct } from "./small-product";
import { setHeapTranspose } from "./transpose";

/**
 * The wasm backend's kernels behind the seam: the fastest composition of existing tfjs wasm
 * kernels for each operation (see the package README), each tested against `portableKernels`.
 */
export const wasmKernels: Readonly<Partial<KernelSignatures>> = Object.freeze({
  linear: wasmLinear,
  layerNorm: wasmLayerNorm,
  gelu: wasmGelu,
  multiHeadAttention: wasmMultiHeadAttention,
  packedSelfAttention: wasmPackedSelfAttention,
});

let removeAll: (() => void) | null = null;

/**
 * Register (`true`, the state after importing this package) or remove (`false`) the built-in wasm
 * overrides of {@link wasmKernels}, and with them a wasm `Identity` kernel that shares its input's
 * buffer instead of copying it (tfjs clones every tensor saved for a backward pass; see
 * `identity.ts`), a `Slice` that copies contiguous slices heap to heap (`slice.ts`), a `Transpose`
 * that moves 4 × 4 tiles or whole rows in SIMD (`transpose.ts`), products of a
 * few rows by a weight changed in place without XNNPACK's repacking (`small-product.ts`), and the
 * whole-model AdamW and EMA updates and column sums inside the heap (`flat-adamw.ts`,
 * `flat-ema.ts`, `heap-ops.ts`), and LayerNorm in one pass each way (`heap-ops.ts`). The
 * kernels are installed on the first call of an override, once the wasm
 * backend's own kernels are registered. Removing everything makes the wasm backend run the
 * portable implementations and tfjs's own kernels — for comparisons and benchmarks. Idempotent.
 */
export function setWasmKernels(enabled: boolean): void {
  if (enabled && !removeAll) {
    const removers = (Object.keys(wasmKernels) as KernelName[]).map((name) => {
      const impl = wasmKernels[name] as (...a: unknown[]) => unknown;
      const withIdentity = (...a: unknown[]) => {
        if (removeAll) {
          setSharingIdentity(true);
          setHeapSlice(true);
          setHeapTranspose(true);
          setSmallProduct(true);
        }
        return impl(...a);
      };
      return registerKernelOverride(name, "wasm", withIdentity as never);
    });
    // Whole-model AdamW and EMA inside the heap (flat-adamw.ts, flat-ema.ts), through @sit/core's seams.
    removers.push(registerFlatAdamWKernel("wasm", wasmFlatAdamW));
    removers.push(registerFlatEmaKernel("wasm", wasmFlatEma));
    setHeapOps(true);
    removers.push(() => setHeapOps(false));
    removeAll = () => {
      for (const r of removers) r();
      setSharingIdentity(false);
      setHeapSlice(false);
      setHeapTranspose(false);
      setSmallProduct(false);
    };
  } else if (!enabled && removeAll) {
    removeAll();
    removeAll = null;
  }
}

// On by default: importing the package (or this module) gives models the wasm kernels.
setWasmKernels(true);
