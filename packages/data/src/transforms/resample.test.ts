import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { TEST_BACKENDS, loadFixture, maxAbsoluteError, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { resizeCenterCropRegion } from "./geometry";
import { resampleRegions } from "./resample";

// torchvision 0.14 outputs on the image_ops fixture's input, written by testdata/make_reference.py.
interface Ref {
  box?: [number, number, number, number];
  size?: [number, number];
  shape: [number, number, number, number];
  output: number[];
}
const reference: Record<string, Ref> = JSON.parse(
  readFileSync(new URL("../../testdata/resample_reference.json", import.meta.url), "utf8"),
);
const fixture = loadFixture("image_ops.safetensors");
const inputNchw = fixture.tensors.input;
const toNhwc = (data: ArrayLike<number>, shape: number[]): tf.Tensor4D =>
  tf.tidy(() =>
    tf
      .tensor4d(Float32Array.from(data), shape as [number, number, number, number])
      .transpose([0, 2, 3, 1]),
  );

for (const backend of TEST_BACKENDS) {
  describe(`resampling matches torchvision tensors (${backend})`, () => {
    for (const [key, mode] of [
      ["bicubic_up", "bicubic"],
      ["bicubic_down", "bicubic"],
      ["bilinear_down", "bilinear"],
    ] as const) {
      it(key, async () => {
        await withBackend(backend, () => {
          const r = reference[key];
          const [top, left, height, width] = r.box!;
          const x = toNhwc(inputNchw.dataSync(), inputNchw.shape);
          const out = resampleRegions(
            x,
            [0, 1].map(() => ({ top, left, height, width })),
            r.size![0],
            r.size![1],
            mode,
          );
          const expected = toNhwc(r.output, r.shape);
          expect(out.shape).toEqual(expected.shape);
          expect(maxAbsoluteError(out, expected)).toBeLessThanOrEqual(1e-5);
          tf.dispose([x, out, expected]);
        });
      });
    }
    it("Resize(14) + CenterCrop(12)", async () => {
      await withBackend(backend, () => {
        const r = reference.resize14_centercrop12;
        const x = toNhwc(inputNchw.dataSync(), inputNchw.shape);
        const region = resizeCenterCropRegion(20, 24, 14, [12, 12]);
        expect(region).toMatchObject({
          resizedHeight: 14,
          resizedWidth: 16,
          offsetY: 1,
          offsetX: 2,
        });
        const out = resampleRegions(x, [region, region], 12, 12, "bilinear");
        const expected = toNhwc(r.output, r.shape);
        expect(maxAbsoluteError(out, expected)).toBeLessThanOrEqual(1e-5);
        tf.dispose([x, out, expected]);
      });
    });
  });
}

describe("ragged batches", () => {
  it("a small image padded into a bigger batch resamples as on its own", () => {
    const x = toNhwc(inputNchw.dataSync(), inputNchw.shape); // [2,20,24,3]
    const small = x.slice([1, 2, 3, 0], [1, 10, 12, 3]) as tf.Tensor4D;
    const padded = tf.concat([
      x.slice([0], [1]),
      small.pad([
        [0, 0],
        [0, 10],
        [0, 12],
        [0, 0],
      ]),
    ]);
    const alone = resampleRegions(
      small,
      [{ top: 1, left: 2, height: 9, width: 10 }],
      8,
      8,
      "bicubic",
    );
    const both = resampleRegions(
      padded as tf.Tensor4D,
      [
        { top: 0, left: 0, height: 20, width: 24 },
        { top: 1, left: 2, height: 9, width: 10 },
      ],
      8,
      8,
      "bicubic",
    );
    expect(maxAbsoluteError(both.slice([1], [1]), alone)).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, small, padded, alone, both]);
  });
});
