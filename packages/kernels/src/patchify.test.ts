import * as tf from "@tensorflow/tfjs";
import { Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, expectClose, useWebgpu, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { patchify, unpatchify, unpatchifyAddBias } from "./patchify";
import { randomTensor } from "./testing/finite-difference";
import { onCpu } from "./webgpu/testing";

describe.each(TEST_BACKENDS)("patchify / unpatchify on %s", (backend) => {
  it("flattens each patch in (row, col, channel) order, patches row-major", async () => {
    await withBackend(backend, () => {
      const [b, h, w, c, p] = [2, 6, 9, 2, 3];
      // pixel value encodes its coordinates, so the check is a formula, not a second implementation
      const code = (bi: number, y: number, x: number, ch: number) =>
        bi * 10000 + y * 100 + x * 10 + ch;
      const data = new Float32Array(b * h * w * c);
      for (let bi = 0; bi < b; bi++)
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++)
            for (let ch = 0; ch < c; ch++)
              data[((bi * h + y) * w + x) * c + ch] = code(bi, y, x, ch);
      const images = tf.tensor4d(data, [b, h, w, c]);
      const patches = patchify(images, p);
      const gw = w / p;
      expect(patches.shape).toEqual([b, (h / p) * gw, p * p * c]);
      const out = patches.dataSync();
      for (let bi = 0; bi < b; bi++)
        for (let t = 0; t < (h / p) * gw; t++)
          for (let r = 0; r < p; r++)
            for (let col = 0; col < p; col++)
              for (let ch = 0; ch < c; ch++) {
                const y = Math.floor(t / gw) * p + r;
                const x = (t % gw) * p + col;
                expect(out[(bi * (h / p) * gw + t) * p * p * c + (r * p + col) * c + ch]).toBe(
                  code(bi, y, x, ch),
                );
              }
      const back = unpatchify(patches, p, [h / p, gw]);
      expect(back.shape).toEqual([b, h, w, c]);
      expect(Array.from(back.dataSync())).toEqual(Array.from(data));
      tf.dispose([images, patches, back]);
    });
  });

  it("unpatchifyAddBias is unpatchify plus a per-channel bias", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(21);
      const patches = randomTensor([2, 6, 12], rng);
      const bias = randomTensor([3], rng);
      const got = unpatchifyAddBias(patches, 2, [2, 3], bias);
      const image = unpatchify(patches, 2, [2, 3]).arraySync() as number[][][][];
      const b = bias.dataSync();
      const expected = image.map((rows) =>
        rows.map((cols) => cols.map((px) => px.map((v, c) => v + b[c]))),
      );
      expect(got.shape).toEqual([2, 4, 6, 3]);
      expectClose(
        got.dataSync() as Float32Array,
        new Float32Array(expected.flat(3)),
        1e-6,
        "image",
      );
      tf.dispose([patches, bias, got]);
    });
  });

  it("passes gradients through (the input gradient of a patch embedding)", async () => {
    await withBackend(backend, () => {
      const rng = Rng.seed(20);
      const images = randomTensor([2, 4, 4, 3], rng);
      const dy = randomTensor([2, 4, 12], rng);
      // d/dx ⟨patchify(x), dy⟩ = unpatchify(dy): patchify is a permutation.
      const g = tf.grad((x: tf.Tensor) => patchify(x, 2))(images, dy);
      const expected = unpatchify(dy, 2);
      expect(Array.from(g.dataSync())).toEqual(Array.from(expected.dataSync()));
      tf.dispose([images, dy, g, expected]);
    });
  });
});

describe("patchify input checks", () => {
  it("rejects sizes not divisible by the patch and bad grids", () => {
    const x = tf.zeros([1, 10, 8, 3]);
    expect(() => patchify(x, 4)).toThrow(ShapeError);
    expect(() => patchify(x, 4)).toThrow(/divisible by the patch size 4, got 10×8/);
    expect(() => patchify(tf.zeros([10, 8, 3]), 2)).toThrow(/NHWC/);
    expect(() => patchify(x, 0)).toThrow(/patchSize/);
    expect(() => unpatchify(tf.zeros([1, 6, 12]), 2)).toThrow(/square grid/);
    expect(() => unpatchify(tf.zeros([1, 6, 12]), 2, [2, 2])).toThrow(/rows·cols = 6/);
    expect(() => unpatchify(tf.zeros([1, 4, 10]), 2)).toThrow(/divisible by p·p = 4/);
    expect(() => unpatchifyAddBias(tf.zeros([1, 4, 12]), 2, undefined, tf.zeros([4]))).toThrow(
      /bias: expected a tensor \[3\]/,
    );
    expect(() => unpatchifyAddBias(tf.zeros([1, 6, 12]), 2, undefined, tf.zeros([3]))).toThrow(
      /square grid/,
    );
    x.dispose();
  });
});

describe("patchify on webgpu (SitPatchify: one kernel each way)", () => {
  it("matches the portable patchify on cpu, its gradient is unpatchify, and it leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    try {
      const rng = Rng.seed(22);
      // A non-square grid (2 × 3 patches of 3 × 3, 2 channels); data drawn on the host (no
      // synchronous reads of webgpu tensors under Node).
      const xs = { data: rng.fillNormal(new Float32Array(216)), shape: [2, 6, 9, 2] };
      const dys = { data: rng.fillNormal(new Float32Array(216)), shape: [2, 6, 18] };
      const [x, dy] = [tf.tensor(xs.data, xs.shape), tf.tensor(dys.data, dys.shape)];
      const run = () =>
        tf.tidy(() => {
          const f = (t: tf.Tensor) => patchify(t, 3);
          const { value, grad } = tf.valueAndGrad(f)(x, dy as tf.Tensor3D);
          return [value, grad];
        });
      const info = await tf.profile(() => {
        tf.dispose(run());
      });
      expect(info.kernels.map((k) => k.name)).toEqual(["SitPatchify", "SitUnpatchify"]);
      const got = run();
      const [value, grad] = await Promise.all(got.map((t) => t.data() as Promise<Float32Array>));
      const want = await onCpu(() => {
        const xc = tf.tensor(xs.data, xs.shape);
        const dyc = tf.tensor(dys.data, dys.shape);
        return [patchify(xc, 3), unpatchify(dyc, 3, [2, 3])];
      });
      expect(got[0].shape).toEqual([2, 6, 18]);
      expect(Array.from(value)).toEqual(Array.from(want[0]));
      expect(Array.from(grad)).toEqual(Array.from(want[1]));
      tf.dispose(got);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) tf.dispose(run());
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, dy]);
    } finally {
      await tf.setBackend("cpu");
    }
  });
});
