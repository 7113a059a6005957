import * as tf from "@tensorflow/tfjs";
import { flatKernels } from "./flat-kernels";
import { WasmHeap } from "./heap";

// XNNPACK packs the right-hand matrix of a product before it multiplies and keeps the packed copy
// per tensor until the tensor changes. AdamW and the EMA teacher rewrite the weights in place every
// step (flat-adamw.ts, flat-ema.ts, which call `WasmHeap.changed`), so every weight is packed anew
// every step: for SiT's 4096 × 4096 projection layer at batch 4, ≈ 70 ms per packing against
// ≈ 18 ms for the product of its 8 rows through matmul-kernels.wat's SIMD loop, which reads the
// weight once, unpacked (measured). This file wraps tfjs's wasm `BatchMatMul` and `_FusedMatMul`
// kernels (every product: @sit/core's Linear calls `matMul`, @sit/vit's layers `fused.matMul`):
// a product of a few rows by a large weight changed in place since XNNPACK last saw it takes the
// heap loop; everything else goes to XNNPACK, which then holds the weight packed.

/** Rows up to which a product may take the heap loop. */
export const SMALL_PRODUCT_ROWS = 32;
/** Weight elements from which packing costs more than the heap loop (4 MB). */
export const SMALL_PRODUCT_MIN_WEIGHT = 1 << 20;

let taken = 0;
/** How many products took the heap loop so far (for tests: XNNPACK's bits are the same). */
export function heapProductCount(): number {
  return taken;
}

interface ProductArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
}

/** The heap loop's output for `a · b (+ bias)`, or null where XNNPACK should multiply. */
function heapProduct(args: ProductArgs): tf.TensorInfo | null {
  const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo>;
  const attrs = args.attrs as { transposeA?: boolean; transposeB?: boolean; activation?: string };
  if (a.dtype !== "float32" || b.dtype !== "float32") return null;
  const heap = WasmHeap.of(args.backend);
  const [m, k] = a.shape.slice(-2);
  const n = b.shape[b.shape.length - 1];
  const batch = (s: number[]) => tf.util.sizeFromShape(s.slice(0, -2));
  const few =
    !attrs.transposeA &&
    !attrs.transposeB &&
    (attrs.activation ?? "linear") === "linear" &&
    !preluActivationWeights &&
    batch(a.shape) === 1 &&
    batch(b.shape) === 1 &&
    m <= SMALL_PRODUCT_ROWS &&
    k * n >= SMALL_PRODUCT_MIN_WEIGHT &&
    n % 4 === 0 &&
    (!bias || (bias.dtype === "float32" && tf.util.sizeFromShape(bias.shape) === n));
  if (!few || !heap.unpacked(b)) {
    heap.packing(b);
    return null;
  }
  const kernels = flatKernels(heap);
  if (kernels.kind !== "simd") return null; // the JavaScript twin is slower than packing
  const lead = (a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2);
  const out = (
    args.backend as { makeOutput(s: number[], d: tf.DataType): tf.TensorInfo }
  ).makeOutput([...lead, m, n], "float32");
  taken++;
  kernels.smallMatMul({
    ...{ out: heap.offset(out), x: heap.offset(a), w: heap.offset(b) },
    ...{ bias: bias ? heap.offset(bias) : null, m, k, n },
  });
  return out;
}

const originals = new Map<string, tf.KernelConfig>();

/**
 * Wrap (`true`) or restore (`false`) the wasm backend's `BatchMatMul` and `_FusedMatMul` so that
 * products of a few rows by a large weight changed in place skip XNNPACK's repacking. Does
 * nothing until the wasm backend's kernels are registered. Idempotent.
 */
export function setSmallProduct(enabled: boolean): void {
  for (const name of ["BatchMatMul", "_FusedMatMul"]) {
    const current = tf.getKernel(name, "wasm");
    const original = originals.get(name);
    if (enabled && !original && current) {
      originals.set(name, current);
      const inner = current.kernelFunc as (args: ProductArgs) => tf.TensorInfo;
      tf.unregisterKernel(name, "wasm");
      tf.registerKernel({
        kernelName: name,
        backendName: "wasm",
        kernelFunc: ((args: ProductArgs) => heapProduct(args) ?? inner(args)) as tf.KernelFunc,
      });
    } else if (!enabled && original) {
      tf.unregisterKernel(name, "wasm");
      tf.registerKernel(original);
      originals.delete(name);
    }
  }
}
