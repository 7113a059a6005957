import * as tf from "@tensorflow/tfjs";
import { TEST_BACKENDS, loadFixture, maxAbsoluteError, withBackend } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { gaussianBlur } from "./blur";
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  grayscale,
  horizontalFlip,
  solarize,
} from "./color";
import { IMAGENET_STATS, normalize } from "./normalize";
import { resampleRegions } from "./resample";

// torchvision 0.14 reference values (NCHW in [0, 1]); converted to NHWC here.
const fixture = loadFixture("image_ops.safetensors");
const raw: Record<string, { data: Float32Array; shape: number[] }> = {};
for (const [k, t] of Object.entries(fixture.tensors)) {
  raw[k] = { data: t.dataSync() as Float32Array, shape: t.shape };
  t.dispose();
}
const nhwc = (key: string): tf.Tensor4D =>
  tf.tidy(() =>
    tf
      .tensor4d(raw[key].data, raw[key].shape as [number, number, number, number])
      .transpose([0, 2, 3, 1]),
  );

afterAll(() => {
  expect(fixture.metadata.layout).toBe("NCHW float32 in [0,1]");
});

for (const backend of TEST_BACKENDS) {
  describe(`image ops match torchvision (${backend})`, () => {
    const cases: [string, (x: tf.Tensor4D) => tf.Tensor4D, number][] = [
      ["output.brightness_1.3", (x) => adjustBrightness(x, 1.3), 1e-5],
      ["output.contrast_0.7", (x) => adjustContrast(x, [0.7, 0.7]), 1e-5],
      ["output.saturation_1.5", (x) => adjustSaturation(x, 1.5), 1e-5],
      ["output.hue_0.1", (x) => adjustHue(x, 0.1), 1e-4],
      ["output.grayscale3", (x) => grayscale(x, 3), 1e-5],
      ["output.solarize_0.5", (x) => solarize(x, 0.5), 1e-5],
      // metadata: reflect padding, separable gaussian, kernel 9, sigma 1.2
      ["output.blur_k9_s1.2", (x) => gaussianBlur(x, 1.2, 9), 1e-5],
      ["output.hflip", (x) => horizontalFlip(x), 1e-5],
      ["output.normalize_imagenet", (x) => normalize(x, IMAGENET_STATS), 1e-5],
      // metadata: crop rows 3..14, cols 5..18 (inclusive), bilinear to 16×16, align_corners=False
      [
        "output.resized_crop_bilinear",
        (x) =>
          resampleRegions(
            x,
            [0, 1].map(() => ({ top: 3, left: 5, height: 12, width: 14 })),
            16,
            16,
            "bilinear",
          ),
        1e-5,
      ],
    ];
    for (const [key, op, tol] of cases) {
      it(`${key} within ${tol}`, async () => {
        await withBackend(backend, () => {
          const before = tf.memory().numTensors;
          const x = nhwc("input");
          const expected = nhwc(key);
          const actual = op(x);
          expect(actual.shape).toEqual(expected.shape);
          const err = maxAbsoluteError(actual, expected);
          expect(err, `${key} max abs error ${err}`).toBeLessThanOrEqual(tol);
          tf.dispose([x, expected, actual]);
          expect(tf.memory().numTensors).toBe(before);
        });
      });
    }
  });
}

describe("per-image factors", () => {
  it("a factor per image equals each image done alone", () => {
    const x = nhwc("input");
    const both = adjustContrast(x, [0.7, 1.3]);
    const second = adjustContrast(x.slice([1], [1]) as tf.Tensor4D, 1.3);
    const first = nhwc("output.contrast_0.7").slice([0], [1]);
    expect(maxAbsoluteError(both.slice([0], [1]), first)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsoluteError(both.slice([1], [1]), second)).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, both, second, first]);
  });

  it("blur with one σ per image equals each image blurred alone", () => {
    const x = nhwc("input");
    const reference = nhwc("output.blur_k9_s1.2");
    const mixed = gaussianBlur(x, [1.2, 0.6], 9);
    expect(maxAbsoluteError(mixed.slice([0], [1]), reference.slice([0], [1]))).toBeLessThanOrEqual(
      1e-5,
    );
    const alone = gaussianBlur(x.slice([1], [1]) as tf.Tensor4D, 0.6, 9);
    expect(maxAbsoluteError(mixed.slice([1], [1]), alone)).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, reference, mixed, alone]);
  });

  it("default kernel size follows each image's own σ (2·ceil(3σ)+1)", () => {
    const x = nhwc("input");
    const mixed = gaussianBlur(x, [1.2, 0.6]);
    const first = gaussianBlur(x.slice([0], [1]) as tf.Tensor4D, 1.2, 9);
    const second = gaussianBlur(x.slice([1], [1]) as tf.Tensor4D, 0.6, 5);
    expect(maxAbsoluteError(mixed.slice([0], [1]), first)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsoluteError(mixed.slice([1], [1]), second)).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, mixed, first, second]);
  });

  it("rejects bad arguments with named errors", () => {
    const x = nhwc("input");
    expect(() => adjustBrightness(x, [1, 2, 3])).toThrow(/factors: expected 2 factors/);
    expect(() => adjustHue(x, 0.7)).toThrow(/factors: expected a finite number in \[-0.5, 0.5\]/);
    expect(() => gaussianBlur(x, 1, 8)).toThrow(/kernelSize: expected an odd size/);
    expect(() =>
      resampleRegions(
        x,
        [
          { top: 0, left: 0, height: 30, width: 5 },
          { top: 0, left: 0, height: 3, width: 3 },
        ],
        4,
        4,
      ),
    ).toThrow(/regions\[0\]/);
    x.dispose();
  });
});
