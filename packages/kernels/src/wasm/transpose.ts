import * as tf from "@tensorflow/tfjs";
import { flatKernels, type PermuteRows, type TransposeTiles } from "./flat-kernels";
import { WasmHeap } from "./heap";

// tfjs's wasm `Transpose` computes every output element's source index with a division per axis:
// ≈ 3 ns an element, 1.7 s of a 12 s SiT step on wasm (the weight gradients' [8320, 768]
// activations, the attention's head layouts). Every transpose a ViT step makes is, once the axes
// that move together are merged, either a batch of matrix transposes (4 × 4 SIMD tiles,
// permute-kernels.wat) or a reordering of whole rows (the innermost axis stays: row copies). This
// file plans that and wraps tfjs's kernel; anything else still goes to tfjs.

/** A transpose as permute-kernels.wat runs it (offsets left out), or null for tfjs's kernel. */
export type TransposePlan =
  | { kind: "tiles"; tiles: Omit<TransposeTiles, "out" | "x"> }
  | { kind: "rows"; rows: Omit<PermuteRows, "out" | "x"> };

/**
 * Merge input axes that stay next to each other, in order, in the output, and drop axes of size 1:
 * `[8320, 768]` by `[1, 0]` stays a matrix transpose; `[65, 384, 64]` by `[2, 0, 1]` becomes
 * `[24960, 64]` by `[1, 0]`.
 */
export function collapsePermutation(
  shape: readonly number[],
  perm: readonly number[],
): { shape: number[]; perm: number[] } {
  const kept = perm.filter((a) => shape[a] !== 1);
  // Groups of input axes, in output order, each a run of consecutive input axes.
  const groups: number[][] = [];
  for (const a of kept) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1] + 1 === a) last.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((g, h) => g[0] - h[0]);
  return {
    shape: byInput.map((g) => g.reduce((n, a) => n * shape[a], 1)),
    perm: groups.map((g) => byInput.indexOf(g)),
  };
}

/** How permute-kernels.wat runs `transpose(x of shape, perm)`, or null where it does not. */
export function planTranspose(
  shape: readonly number[],
  perm: readonly number[],
): TransposePlan | null {
  const c = collapsePermutation(shape, perm);
  const rank = c.shape.length;
  if (rank < 2) return null; // a copy: tfjs's kernel (and a reshape) is as fast
  const strides = tf.util.computeStrides(c.shape).concat(1); // input strides, by input axis
  if (c.perm[rank - 1] === rank - 1) {
    // The innermost axis stays: rows of `len` floats, gathered in output order.
    if (rank > 4) return null;
    const lead = c.perm.slice(0, -1);
    const pad = 3 - lead.length;
    const n = [...Array(pad).fill(1), ...lead.map((a) => c.shape[a])];
    const s = [...Array(pad).fill(0), ...lead.map((a) => strides[a])];
    return {
      kind: "rows",
      rows: {
        n: n as PermuteRows["n"],
        strides: s as PermuteRows["strides"],
        len: c.shape[rank - 1],
      },
    };
  }
  if (rank > 3) return null;
  // The input's innermost axis (c, contiguous) moves; the output's innermost comes from input axis
  // r. A third axis, if any, is the batch b, wherever it sits in either layout.
  const rAxis = c.perm[rank - 1];
  const cAxis = rank - 1;
  const bAxis = [0, 1, 2].slice(0, rank).find((a) => a !== rAxis && a !== cAxis);
  const outStrides = tf.util.computeStrides(c.perm.map((a) => c.shape[a])).concat(1); // by output axis
  const outStride = (inputAxis: number) => outStrides[c.perm.indexOf(inputAxis)];
  return {
    kind: "tiles",
    tiles: {
      nb: bAxis === undefined ? 1 : c.shape[bAxis],
      nr: c.shape[rAxis],
      nc: c.shape[cAxis],
      ob: bAxis === undefined ? 0 : outStride(bAxis),
      oc: outStride(cAxis),
      sb: bAxis === undefined ? 0 : strides[bAxis],
      sr: strides[rAxis],
    },
  };
}

interface TransposeArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
}

let taken = 0;
/** How many transposes ran in permute-kernels.wat so far (for tests). */
export function heapTransposeCount(): number {
  return taken;
}

/** The heap kernel's output for a float32 transpose it plans, or null for tfjs's kernel. */
function heapTranspose(args: TransposeArgs): tf.TensorInfo | null {
  const x = args.inputs.x as tf.TensorInfo;
  const perm = (args.attrs as { perm: number[] }).perm;
  if (x.dtype !== "float32") return null;
  const plan = planTranspose(x.shape, perm);
  if (!plan) return null;
  const heap = WasmHeap.of(args.backend);
  const kernels = flatKernels(heap).permute;
  if (!kernels) return null;
  const out = (
    args.backend as { makeOutput(s: number[], d: tf.DataType): tf.TensorInfo }
  ).makeOutput(
    perm.map((a) => x.shape[a]),
    "float32",
  );
  const [o, src] = [heap.offset(out), heap.offset(x)];
  if (plan.kind === "tiles") kernels.tiles({ out: o, x: src, ...plan.tiles });
  else kernels.rows({ out: o, x: src, ...plan.rows });
  taken++;
  return out;
}

let original: tf.KernelConfig | undefined;

/** Install (`true`) or remove (`false`, restoring tfjs's kernel) the heap `Transpose`. Idempotent. */
export function setHeapTranspose(enabled: boolean): void {
  const current = tf.getKernel("Transpose", "wasm");
  if (enabled && !original && current) {
    original = current;
    const inner = current.kernelFunc as (args: TransposeArgs) => tf.TensorInfo;
    tf.unregisterKernel("Transpose", "wasm");
    tf.registerKernel({
      kernelName: "Transpose",
      backendName: "wasm",
      kernelFunc: ((args: TransposeArgs) => heapTranspose(args) ?? inner(args)) as tf.KernelFunc,
    });
  } else if (!enabled && original) {
    tf.unregisterKernel("Transpose", "wasm");
    tf.registerKernel(original);
    original = undefined;
  }
}
