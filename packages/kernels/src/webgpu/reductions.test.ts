import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { webgpuColumnSum } from "./gelu";
import { FINISH_MAX_BLOCKS } from "./reductions";
import { countLaunches, fill, onCpu, settledUsage, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

// Rows per block of blockColumnSums: each level divides the row count by this.
const BLOCK_ROWS = 32;

/** Seeded rows with mean 0.5, so that the column sums are large against their rounding noise. */
const rows = (shape: [number, number], seed: number) =>
  tf.add(fill(shape, seed), 0.5) as tf.Tensor2D;

/**
 * Dispatches `columnSum` takes for `m` rows: blockColumnSums while more than FINISH_MAX_BLOCKS
 * partial rows are left, then finishColumnSum.
 */
function expectedDispatches(m: number): number {
  let levels = 1;
  for (let r = Math.ceil(m / BLOCK_ROWS); r > FINISH_MAX_BLOCKS; r = Math.ceil(r / BLOCK_ROWS))
    levels++;
  return levels + 1;
}

describe("webgpu column sums (reductions.ts columnSum)", () => {
  // [rows, cols]: few rows (one level, a finish with 64 lanes per column), many rows and three
  // columns (a pixel bias gradient: an extra level), a ragged row count at both levels with five
  // columns, and 70 columns (two columns per thread in the blocks, two finishing workgroups).
  it.for([
    [100, 3, 2],
    [40000, 3, 3],
    [33007, 5, 3],
    [32800, 70, 3],
  ] as const)(
    "sums [%i, %i] like the cpu backend (1e-5) in %i dispatches",
    async ([m, d, n], ctx) => {
      if (!(await useWebgpu(ctx))) return;
      expect(expectedDispatches(m)).toBe(n);
      const [want] = await onCpu(() => [tf.sum(rows([m, d], m + d), 0)]);
      const x = rows([m, d], m + d);
      const launches = await countLaunches(() => webgpuColumnSum(x));
      expect(launches).toEqual({ dispatches: n, kernels: ["SitColumnSum"] });
      const got = webgpuColumnSum(x);
      expect(got.shape).toEqual([d]);
      expectClose(await got.data(), want, 1e-5, `column sums of [${m}, ${d}]`);
      tf.dispose([x, got]);
    },
  );

  it("frees the intermediate partials of every level", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const x = rows([40000, 3], 7);
    const before = await settledUsage(() => webgpuColumnSum(x));
    for (let i = 0; i < 3; i++) tf.dispose(webgpuColumnSum(x));
    expect(await settledUsage(() => webgpuColumnSum(x))).toEqual(before);
    x.dispose();
  });
});
