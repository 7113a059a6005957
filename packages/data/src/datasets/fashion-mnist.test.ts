import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeWithSharedData } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { DATASET_STATS } from "../transforms/normalize";
import { findBundledFashionMnist, loadBundledFashionMnist } from "./bundled";
import { FASHION_MNIST_CLASSES } from "./idx";
import { loadFashionMnist } from "./idx-files";

function histogram(labels: Int32Array): number[] {
  const h = new Array(10).fill(0);
  for (const l of labels) h[l]++;
  return h;
}

describeWithSharedData("real Fashion-MNIST (../shared/data)", (dataDir) => {
  const dir = join(dataDir, "fashion-mnist");
  let cached: ReturnType<typeof loadFashionMnist> | undefined;
  const fullTrain = () => {
    cached ??= loadFashionMnist(dir, "train");
    return cached;
  };

  it("60,000 training images, 6,000 per class; 10,000 test, 1,000 per class", () => {
    const train = fullTrain();
    const test = loadFashionMnist(dir, "test");
    expect(train.length).toBe(60000);
    expect(test.length).toBe(10000);
    expect(histogram(train.labels!)).toEqual(new Array(10).fill(6000));
    expect(histogram(test.labels!)).toEqual(new Array(10).fill(1000));
    const s = train.get(0);
    expect([s.height, s.width, s.channels]).toEqual([28, 28, 1]);
    expect(train.classNames).toEqual(FASHION_MNIST_CLASSES);
  });

  it("pixel statistics match the published normalisation constants", () => {
    const { images } = fullTrain();
    let sum = 0;
    let sq = 0;
    for (const v of images) {
      sum += v / 255;
      sq += (v / 255) ** 2;
    }
    const mean = sum / images.length;
    const std = Math.sqrt(sq / images.length - mean * mean);
    expect(Math.abs(mean - DATASET_STATS["fashion-mnist"].mean[0])).toBeLessThan(5e-4);
    expect(Math.abs(std - DATASET_STATS["fashion-mnist"].std[0])).toBeLessThan(5e-4);
  });

  it("the bundled subset is the first 600/100 images per class of the real data, unchanged", () => {
    const bundled = loadBundledFashionMnist(fileURLToPath(new URL(".", import.meta.url)), "train");
    const full = fullTrain();
    const seen = new Array(10).fill(0);
    let k = 0;
    for (let i = 0; i < full.length && k < bundled.length; i++) {
      const l = full.labels![i];
      if (seen[l]++ >= 600) continue;
      expect(bundled.labels![k]).toBe(l);
      if (k % 997 === 0)
        expect(Buffer.from(bundled.get(k).image).equals(Buffer.from(full.get(i).image))).toBe(true);
      k++;
    }
    expect(k).toBe(6000);
  });
});

describe("bundled Fashion-MNIST subset (data/fashion-mnist-subset)", () => {
  const here = fileURLToPath(new URL(".", import.meta.url));

  it("is found from a path inside the repository and is class-balanced", () => {
    const dir = findBundledFashionMnist(here);
    expect(dir.endsWith(join("data", "fashion-mnist-subset"))).toBe(true);
    expect(findBundledFashionMnist(dir)).toBe(dir);
    const train = loadBundledFashionMnist(here, "train");
    const test = loadBundledFashionMnist(here, "test");
    expect(histogram(train.labels!)).toEqual(new Array(10).fill(600));
    expect(histogram(test.labels!)).toEqual(new Array(10).fill(100));
  });

  it("a path outside any checkout is a clear error", () => {
    expect(() => findBundledFashionMnist("/proc")).toThrow(/no bundled Fashion-MNIST subset found/);
  });
});
