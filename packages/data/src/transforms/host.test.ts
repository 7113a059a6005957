import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { loadFixtureRaw, maxAbsoluteError } from "@sit/testing";
import { describe, expect, it } from "vitest";
import type { Sample } from "../types";
import { resizeCenterCropRegion } from "./geometry";
import {
  type HostImages,
  hostBlur,
  hostBrightness,
  hostContrast,
  hostFlip,
  hostGrayscale,
  hostHue,
  hostNormalize,
  hostResample,
  hostSaturation,
  hostSolarize,
} from "./host";
import { IMAGENET_STATS } from "./normalize";
import { evalTransform, sitTwoViewTransform } from "./sit";

// The host (JS-loop) path against the same torchvision references as the tensor path.
const fixture = loadFixtureRaw("image_ops.safetensors");
function nhwc(data: ArrayLike<number>, shape: number[]): HostImages {
  const [n, c, h, w] = shape;
  const out = new Float32Array(n * h * w * c);
  for (let b = 0; b < n; b++)
    for (let k = 0; k < c; k++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          out[((b * h + y) * w + x) * c + k] = data[((b * c + k) * h + y) * w + x];
  return { data: out, n, height: h, width: w, channels: c };
}
const ref = (key: string) => {
  const t = fixture.tensors[key];
  return nhwc(t.data as Float32Array, t.shape);
};
const each = (f: (x: HostImages, i: number) => void) => (x: HostImages) => {
  for (let i = 0; i < x.n; i++) f(x, i);
  return x;
};

describe("host path matches torchvision", () => {
  const cases: [string, (x: HostImages) => HostImages, number][] = [
    ["output.brightness_1.3", each((x, i) => hostBrightness(x, i, 1.3)), 1e-5],
    ["output.contrast_0.7", each((x, i) => hostContrast(x, i, 0.7)), 1e-5],
    ["output.saturation_1.5", each((x, i) => hostSaturation(x, i, 1.5)), 1e-5],
    ["output.hue_0.1", each((x, i) => hostHue(x, i, 0.1)), 1e-4],
    ["output.grayscale3", each((x, i) => hostGrayscale(x, i)), 1e-5],
    ["output.solarize_0.5", each((x, i) => hostSolarize(x, i, 0.5)), 1e-5],
    [
      "output.blur_k9_s1.2",
      (x) => {
        hostBlur(x, [0, 1], [1.2, 1.2], 9);
        return x;
      },
      1e-5,
    ],
    ["output.hflip", each((x, i) => hostFlip(x, i)), 1e-5],
    [
      "output.normalize_imagenet",
      (x) => {
        hostNormalize(x, IMAGENET_STATS);
        return x;
      },
      1e-5,
    ],
    [
      "output.resized_crop_bilinear",
      (x) =>
        hostResample(
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
    it(`${key} within ${tol}`, () => {
      const out = op(ref("input"));
      const expected = ref(key);
      expect([out.n, out.height, out.width, out.channels]).toEqual([
        expected.n,
        expected.height,
        expected.width,
        expected.channels,
      ]);
      expect(maxAbsoluteError(out.data, expected.data)).toBeLessThanOrEqual(tol);
    });
  }

  const reference = JSON.parse(
    readFileSync(new URL("../../testdata/resample_reference.json", import.meta.url), "utf8"),
  );
  for (const [key, mode] of [
    ["bicubic_up", "bicubic"],
    ["bicubic_down", "bicubic"],
    ["bilinear_down", "bilinear"],
  ] as const) {
    it(`resampling ${key}`, () => {
      const r = reference[key];
      const [top, left, height, width] = r.box;
      const out = hostResample(
        ref("input"),
        [0, 1].map(() => ({ top, left, height, width })),
        r.size[0],
        r.size[1],
        mode,
      );
      expect(maxAbsoluteError(out.data, nhwc(r.output, r.shape).data)).toBeLessThanOrEqual(1e-5);
    });
  }
  it("Resize(14) + CenterCrop(12)", () => {
    const r = reference.resize14_centercrop12;
    const region = resizeCenterCropRegion(20, 24, 14, [12, 12]);
    const out = hostResample(ref("input"), [region, region], 12, 12, "bilinear");
    expect(maxAbsoluteError(out.data, nhwc(r.output, r.shape).data)).toBeLessThanOrEqual(1e-5);
  });
});

describe("host and tensor paths agree on whole transforms", () => {
  function samples(n: number, h: number, w: number, c: number): Sample[] {
    const rng = Rng.seed(5);
    return Array.from({ length: n }, (_, i) => {
      const image = new Uint8Array((h + i) * w * c);
      for (let k = 0; k < image.length; k++) image[k] = rng.int(0, 256);
      return { image, height: h + i, width: w, channels: c };
    });
  }
  for (const [name, make] of [
    [
      "SiT two views",
      (execution: "host" | "tensor") => sitTwoViewTransform({ size: 20, execution }),
    ],
    [
      "SiT two views, gray → RGB",
      (execution: "host" | "tensor") =>
        sitTwoViewTransform({ size: 16, interpolation: "bilinear", execution }),
    ],
    ["evaluation", (execution: "host" | "tensor") => evalTransform({ size: 16, execution })],
  ] as const) {
    it(name, () => {
      const data = samples(8, 24, 30, name.includes("gray") ? 1 : 3);
      const host = make("host");
      const tensor = make("tensor");
      expect(host.usesHost()).toBe(true);
      expect(tensor.usesHost()).toBe(false);
      const a = host.apply(data, Rng.seed(7));
      const b = tensor.apply(data, Rng.seed(7));
      expect(a.length).toBe(b.length);
      a.forEach((t, v) => {
        expect(t.shape).toEqual(b[v].shape);
        // Same draws; differences only from float rounding (jitter clamps, hue) through the chain.
        expect(maxAbsoluteError(t, b[v])).toBeLessThanOrEqual(1e-4);
      });
      tf.dispose([...a, ...b]);
    });
  }
});
