import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { patchify, unpatchifyAddBias } from "../patchify";
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

  it("gives unpatchifyAddBias' bias gradient over 49k pixel rows like the cpu backend", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    // 3 images of 128² (8 × 8 patches of 16², RGB): 1536 blocks of pixels, one extra level.
    const make = () => [fill([3, 64, 768], 11), fill([3], 12), rows([3 * 128 * 128, 3], 13)];
    const grads = (p: tf.Tensor, b: tf.Tensor, dy: tf.Tensor) =>
      tf.grads((pi: tf.Tensor, bi: tf.Tensor) => unpatchifyAddBias(pi, 16, [8, 8], bi))(
        [p, b],
        tf.reshape(dy, [3, 128, 128, 3]),
      );
    // On cpu the portable unpatchify + add: dp = patchify(dy), db = Σ dy per channel.
    const want = await onCpu(() => {
      const [p, b, dy] = make();
      const dImage = tf.reshape(dy, [3, 128, 128, 3]) as tf.Tensor4D;
      return [...grads(p, b, dy), patchify(dImage, 16), tf.sum(dy, 0)];
    });
    expectClose(want[0], want[2], 0, "cpu dp = patchify(dy)");
    expectClose(want[1], want[3], 1e-6, "cpu db = Σ dy");
    const [p, b, dy] = make();
    const launches = await countLaunches(() => grads(p, b, dy));
    expect(launches.kernels.filter((k) => k.startsWith("Sit"))).toEqual([
      "SitUnpatchifyBias",
      "SitUnpatchifyBiasGrad",
    ]);
    // Forward 1; backward: the patches' gradient 1, the column sum 2 + 1 extra level.
    expect(launches.dispatches).toBe(1 + 1 + expectedDispatches(3 * 128 * 128));
    const got = grads(p, b, dy);
    expectClose(await got[0].data(), want[0], 0, "dpatches");
    expectClose(await got[1].data(), want[1], 1e-5, "dbias");
    tf.dispose([p, b, dy, ...got]);
  });

  it("frees the intermediate partials of every level", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const x = rows([40000, 3], 7);
    const before = await settledUsage(() => webgpuColumnSum(x));
    for (let i = 0; i < 3; i++) tf.dispose(webgpuColumnSum(x));
    expect(await settledUsage(() => webgpuColumnSum(x))).toEqual(before);
    x.dispose();
  });
});
