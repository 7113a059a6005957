import * as tf from "@tensorflow/tfjs";
import { withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import "./register";
import {
  collapsePermutation,
  heapTransposeCount,
  planTranspose,
  setHeapTranspose,
} from "./transpose";

// The heap `Transpose` (transpose.ts over permute-kernels.wat) against transposition by index
// arithmetic in this file, for every permutation of small ranks, ragged edges included.

/** `x` of `shape` transposed by `perm`, element by element from row-major indices. */
function reference(x: Float32Array, shape: number[], perm: number[]): Float32Array {
  const outShape = perm.map((a) => shape[a]);
  const inStrides = shape.map((_, i) => shape.slice(i + 1).reduce((n, d) => n * d, 1));
  const out = new Float32Array(x.length);
  const idx = new Array(shape.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let k = 0; k < perm.length; k++) src += idx[k] * inStrides[perm[k]];
    out[o] = x[src];
    for (let k = perm.length - 1; k >= 0; k--) {
      if (++idx[k] < outShape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  return permutations(n - 1).flatMap((p) =>
    Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]),
  );
}

describe("collapsePermutation / planTranspose", () => {
  it("merges axes that move together and drops axes of size 1", () => {
    expect(collapsePermutation([65, 384, 64], [2, 0, 1])).toEqual({
      shape: [24960, 64],
      perm: [1, 0],
    });
    expect(collapsePermutation([128, 65, 3, 64], [1, 0, 2, 3])).toEqual({
      shape: [128, 65, 192],
      perm: [1, 0, 2],
    });
    expect(collapsePermutation([1, 5, 1, 7], [3, 2, 0, 1])).toEqual({
      shape: [5, 7],
      perm: [1, 0],
    });
  });

  it("plans a matrix transpose as tiles and a kept innermost axis as rows", () => {
    expect(planTranspose([8320, 768], [1, 0])).toEqual({
      kind: "tiles",
      tiles: { nb: 1, nr: 8320, nc: 768, ob: 0, oc: 8320, sb: 0, sr: 768 },
    });
    expect(planTranspose([128, 65, 3, 192], [2, 1, 0, 3])).toEqual({
      kind: "rows",
      rows: { n: [3, 65, 128], strides: [192, 576, 37440], len: 192 },
    });
    // Four axes that all move, and a copy, stay with tfjs.
    expect(planTranspose([2, 3, 4, 5], [3, 2, 1, 0])).toBeNull();
    expect(planTranspose([6, 1], [1, 0])).toBeNull();
  });
});

describe("wasm heap Transpose", () => {
  it("equals transposition by index for every permutation of ranks 2–4, leaking nothing", async () => {
    await withBackend("wasm", () => {
      setHeapTranspose(true); // installed by the first wasm override call; here, directly
      const cases: number[][] = [
        [37, 13],
        [4, 4],
        [5, 7, 9],
        [8, 3, 12],
        [4, 6, 5, 8],
        [3, 1, 5, 4],
      ];
      let planned = 0;
      const before = heapTransposeCount();
      for (const shape of cases)
        for (const perm of permutations(shape.length)) {
          const size = shape.reduce((n, d) => n * d, 1);
          const data = Float32Array.from({ length: size }, (_, i) => i * 0.5 - 7);
          const x = tf.tensor(data, shape);
          const n0 = tf.memory().numTensors;
          const y = tf.transpose(x, perm);
          expect(tf.memory().numTensors).toBe(n0 + 1);
          expect(y.shape).toEqual(perm.map((a) => shape[a]));
          expect(Array.from(y.dataSync()), `[${shape}] by [${perm}]`).toEqual(
            Array.from(reference(data, shape, perm)),
          );
          if (planTranspose(shape, perm)) planned++;
          tf.dispose([x, y]);
        }
      // Every planned transpose ran in the heap kernels (the SIMD module instantiates on Node 20).
      expect(planned).toBeGreaterThan(30);
      expect(heapTransposeCount() - before).toBe(planned);
    });
  });

  it("leaves integer tensors to tfjs's kernel", async () => {
    await withBackend("wasm", () => {
      setHeapTranspose(true);
      const before = heapTransposeCount();
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], "int32");
      const y = tf.transpose(x);
      expect(Array.from(y.dataSync())).toEqual([1, 4, 2, 5, 3, 6]);
      expect(heapTransposeCount()).toBe(before);
      tf.dispose([x, y]);
    });
  });
});
