import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { patchify, unpatchifyAddBias } from "../patchify";
import { countLaunches, fill, onCpu, settledUsage, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

/** Seeded rows with mean 0.5, so that the sums are large against their rounding noise. */
const rows = (shape: [number, number], seed: number) =>
  tf.add(fill(shape, seed), 0.5) as tf.Tensor2D;

describe("unpatchifyAddBias' gradient on webgpu (SitUnpatchifyBiasGrad)", () => {
  it("gives unpatchifyAddBias' bias gradient over 49k pixel rows like the cpu backend, in 2 dispatches", async (ctx) => {
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
    // Forward 1; backward 2: the patches' gradient with per-workgroup channel sums, and their sum
    // (a column sum over the pixel rows would be 3 here, one more per factor of 32 rows).
    expect(launches.dispatches).toBe(1 + 2);
    const got = grads(p, b, dy);
    expectClose(await got[0].data(), want[0], 0, "dpatches");
    expectClose(await got[1].data(), want[1], 1e-5, "dbias");
    tf.dispose([p, b, dy, ...got]);
  });

  // More elements than the pass's 1024 workgroups of 256 threads (each thread then loops), RGB
  // (1023 workgroups: a multiple of 3) and grayscale.
  it.for([
    [2, 256, 3],
    [6, 224, 1],
  ] as const)(
    "gives the bias gradient of [%i, %i², %i] images like the cpu backend",
    async ([n, size, c], ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const grid = size / 16;
      const shape = [n, size, size, c];
      const make = () => [
        fill([n, grid * grid, 256 * c], 21),
        fill([c], 22),
        rows([n * size * size, c], 23),
      ];
      const grads = (p: tf.Tensor, b: tf.Tensor, dy: tf.Tensor) =>
        tf.grads((pi: tf.Tensor, bi: tf.Tensor) => unpatchifyAddBias(pi, 16, [grid, grid], bi))(
          [p, b],
          tf.reshape(dy, shape),
        );
      const want = await onCpu(() => grads(...(make() as [tf.Tensor, tf.Tensor, tf.Tensor])));
      const [p, b, dy] = make();
      const got = grads(p, b, dy);
      expectClose(await got[0].data(), want[0], 0, "dpatches");
      expectClose(await got[1].data(), want[1], 1e-5, "dbias");
      tf.dispose(got);
      const settled = () => settledUsage(() => grads(p, b, dy)[1]);
      const before = await settled();
      for (let i = 0; i < 2; i++) tf.dispose(tf.tidy(() => grads(p, b, dy)));
      expect(await settled()).toEqual(before);
      tf.dispose([p, b, dy]);
    },
  );
});
