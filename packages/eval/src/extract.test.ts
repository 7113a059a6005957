import { mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng } from "@sit/core";
import { type Dataset, type Sample, evalTransform } from "@sit/data";
import { FileListDataset } from "@sit/data/node";
import { VisionTransformer } from "@sit/vit";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import { extractFeatures as extractFeaturesInPage } from "./extract";
import { extractFeatures } from "./feature-cache";
import { knnEval } from "./knn";

/** 2×2 RGB images whose channel c holds the value (i + c) / 255 everywhere; label i % 3. */
function tinyDataset(n: number, labeled = true): Dataset & { reads: number } {
  const ds = {
    length: n,
    reads: 0,
    labels: labeled ? Int32Array.from({ length: n }, (_, i) => i % 3) : undefined,
    get(i: number): Sample {
      ds.reads++;
      const image = new Uint8Array(2 * 2 * 3);
      for (let p = 0; p < 4; p++) for (let c = 0; c < 3; c++) image[p * 3 + c] = i + c;
      return { image, height: 2, width: 2, channels: 3, ...(labeled ? { label: i % 3 } : {}) };
    },
  };
  return ds;
}

/** Backbone: per-image channel means [B, 3], counting its calls. */
function meanBackbone() {
  const f = (x: tf.Tensor4D) => {
    f.calls++;
    return tf.mean(x, [1, 2]);
  };
  f.calls = 0;
  return f;
}

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "sit-eval-cache-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("extractFeatures", () => {
  it("of @sit/eval (a page's): the same features, and a cache is refused naming @sit/eval/node", async () => {
    const ds = tinyDataset(4);
    const page = await extractFeaturesInPage(meanBackbone(), ds, { batchSize: 3 });
    const node = await extractFeatures(meanBackbone(), ds, { batchSize: 3 });
    expect(page.features).toEqual(node.features);
    expect(page.labels).toEqual(node.labels);
    await expect(
      extractFeaturesInPage(meanBackbone(), ds, { cache: { dir: tempDir(), modelKey: "m" } }),
    ).rejects.toThrow(
      /options\.cache: feature caches in files need Node; use extractFeatures from @sit\/eval\/node/,
    );
  });

  it("runs a function backbone batch by batch, in dataset order, without leaking tensors", async () => {
    const ds = tinyDataset(7);
    const backbone = meanBackbone();
    const before = tf.memory().numTensors;
    const out = await extractFeatures(backbone, ds, { batchSize: 3 });
    expect(tf.memory().numTensors).toBe(before);
    expect(backbone.calls).toBe(3); // 3 + 3 + 1
    expect(out.dim).toBe(3);
    expect(Array.from(out.labels)).toEqual([0, 1, 2, 0, 1, 2, 0]);
    // Row i, channel c = (i + c) / 255 (pixels are Uint8 scaled to [0, 1]).
    for (let i = 0; i < 7; i++)
      for (let c = 0; c < 3; c++) expect(out.features[i * 3 + c]).toBeCloseTo((i + c) / 255, 6);
    expect(out.cache).toBe("computed");
  });

  it("applies the transform to each batch", async () => {
    const out = await extractFeatures(meanBackbone(), tinyDataset(4), {
      transform: (x: tf.Tensor4D) => tf.mul(x, 255).sub(1) as tf.Tensor4D,
    });
    expect(Array.from(out.features.subarray(3, 6))).toEqual([0, 1, 2]); // row 1: (1 + c) − 1
  });

  it("caches on disk: a hit skips the backbone; a changed model key or transform recomputes", async () => {
    const dir = tempDir();
    const ds = tinyDataset(5);
    const backbone = meanBackbone();
    const opts = { cache: { dir, modelKey: "ckpt-a" } };
    const first = await extractFeatures(backbone, ds, opts);
    expect(first.cache).toBe("computed");
    expect(backbone.calls).toBe(1);
    const second = await extractFeatures(backbone, ds, opts);
    expect(second.cache).toBe("hit");
    expect(backbone.calls).toBe(1);
    expect(second.features).toEqual(first.features);
    expect(second.labels).toEqual(first.labels);

    const otherCkpt = await extractFeatures(backbone, ds, { cache: { dir, modelKey: "ckpt-b" } });
    expect(otherCkpt.cache).toBe("computed");
    expect(backbone.calls).toBe(2);
    const double = (x: tf.Tensor4D) => tf.mul(x, 2) as tf.Tensor4D;
    const transformed = await extractFeatures(backbone, ds, {
      ...opts,
      transform: double,
      transformKey: "x2",
    });
    expect(transformed.cache).toBe("computed");
    expect(backbone.calls).toBe(3);
    expect(transformed.features[3]).toBeCloseTo((2 * 1) / 255, 6);
    const transformed2 = await extractFeatures(backbone, ds, {
      ...opts,
      transform: double,
      transformKey: "x2",
    });
    expect(transformed2.cache).toBe("hit");
    // A changed dataset (other pixels, same length) is a different key too.
    const shifted = { ...tinyDataset(5), get: (i: number) => tinyDataset(6).get(i + 1) };
    expect((await extractFeatures(backbone, shifted, opts)).cache).toBe("computed");
    expect(readdirSync(dir).filter((f) => f.endsWith(".bin"))).toHaveLength(4);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toHaveLength(0);
  });

  it("a dataset changed anywhere, not only at the 8 sampled images, misses the cache", async () => {
    const dir = tempDir();
    const backbone = meanBackbone();
    const opts = { cache: { dir, modelKey: "m" } };
    const base = tinyDataset(100);
    expect((await extractFeatures(backbone, base, opts)).cache).toBe("computed");
    expect((await extractFeatures(backbone, base, opts)).cache).toBe("hit");
    // Image 50 is not one of the sampled ones (0, 14, 28, 42, 57, 71, 85, 99).
    const edited = {
      ...tinyDataset(100),
      get: (i: number) => (i === 50 ? tinyDataset(100).get(51) : tinyDataset(100).get(i)),
    };
    const out = await extractFeatures(backbone, edited, opts);
    expect(out.cache).toBe("computed");
    expect(out.features[50 * 3]).toBeCloseTo(51 / 255, 6);
  });

  it("a folder of images changed in one unsampled file misses the cache", async () => {
    const root = tempDir();
    const png = (value: number) => {
      const img = new PNG({ width: 2, height: 2 });
      img.data.fill(value);
      for (let p = 3; p < 16; p += 4) img.data[p] = 255;
      return PNG.sync.write(img);
    };
    const files = Array.from({ length: 20 }, (_, i) => join(root, `img-${i}.png`));
    files.forEach((f, i) => {
      writeFileSync(f, png(10 * i));
    });
    const dir = tempDir();
    const backbone = meanBackbone();
    const opts = { cache: { dir, modelKey: "m" } };
    const ds = () => new FileListDataset(files, new Int32Array(20));
    expect((await extractFeatures(backbone, ds(), opts)).cache).toBe("computed");
    expect((await extractFeatures(backbone, ds(), opts)).cache).toBe("hit");
    // File 10 is not sampled (0, 3, 5, 8, 11, 14, 16, 19); same size, other pixels.
    writeFileSync(files[10], png(7));
    utimesSync(files[10], new Date(), new Date(Date.now() + 5000));
    const out = await extractFeatures(backbone, ds(), opts);
    expect(out.cache).toBe("computed");
    expect(out.features[10 * 3]).toBeCloseTo(7 / 255, 6);
  });

  it("detects a corrupt or truncated cache file and rebuilds it", async () => {
    const dir = tempDir();
    const ds = tinyDataset(6);
    const backbone = meanBackbone();
    const opts = { cache: { dir, modelKey: "m" }, warn: (m: string) => warnings.push(m) };
    const warnings: string[] = [];
    const first = await extractFeatures(backbone, ds, opts);
    const path = first.cachePath!;
    const bytes = readFileSync(path);
    bytes[bytes.length - 30] ^= 0x40; // flip one bit inside the features
    writeFileSync(path, bytes);
    const afterFlip = await extractFeatures(backbone, ds, opts);
    expect(afterFlip.cache).toBe("rebuilt");
    expect(warnings[0]).toMatch(/checksum mismatch/);
    expect(afterFlip.features).toEqual(first.features);
    expect((await extractFeatures(backbone, ds, opts)).cache).toBe("hit");
    writeFileSync(path, readFileSync(path).subarray(0, 40));
    expect((await extractFeatures(backbone, ds, opts)).cache).toBe("rebuilt");
    expect(warnings[1]).toMatch(/feature cache/);
    expect(backbone.calls).toBe(3);
  });

  it("gives -1 labels for an unlabeled dataset, which evaluation then refuses", async () => {
    const feats = await extractFeatures(meanBackbone(), tinyDataset(4, false));
    expect(Array.from(feats.labels)).toEqual([-1, -1, -1, -1]);
    expect(() => knnEval(feats, feats, { ks: [1] })).toThrow(/unlabeled/);
  });

  it("rejects bad options with clear errors", async () => {
    const ds = tinyDataset(3);
    await expect(extractFeatures(meanBackbone(), ds, { pool: "mean" })).rejects.toThrow(
      /pool must be left unset/,
    );
    await expect(
      extractFeatures(meanBackbone(), ds, { cache: { dir: tempDir() } }),
    ).rejects.toThrow(/cache.modelKey/);
    await expect(
      extractFeatures(meanBackbone(), ds, {
        cache: { dir: tempDir(), modelKey: "m" },
        transform: (x) => x,
      }),
    ).rejects.toThrow(/transformKey/);
    await expect(extractFeatures(meanBackbone(), ds, { batchSize: 0 })).rejects.toThrow(
      ConfigError,
    );
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong input
    await expect(extractFeatures("resnet" as any, ds)).rejects.toThrow(/backbone: expected/);
  });

  it("pools a ViT's tokens (cls, mean, cls+mean) in eval mode; changed weights recompute", async () => {
    const vit = new VisionTransformer({
      imgSize: 8,
      patchSize: 4,
      embedDim: 8,
      depth: 2,
      numHeads: 2,
      dropPathRate: 0.5,
      rng: Rng.seed(1),
    });
    const images = (n: number): Dataset => {
      const rng = Rng.seed(2);
      return {
        length: n,
        get: (i: number) => {
          const image = new Float32Array(8 * 8 * 3);
          const r = Rng.seed(100 + i);
          for (let k = 0; k < image.length; k++) image[k] = r.float();
          return { image, height: 8, width: 8, channels: 3, label: rng.int(0, 1) + (i % 2) };
        },
      };
    };
    const ds = images(5);
    vit.train();
    const cls = await extractFeatures(vit, ds, { batchSize: 2 });
    const again = await extractFeatures(vit, ds, { batchSize: 5 });
    expect(vit.training).toBe(true); // restored
    expect(again.features).toEqual(cls.features); // drop path off in eval mode; batching irrelevant
    const mean = await extractFeatures(vit, ds, { pool: "mean" });
    const both = await extractFeatures(vit, ds, { pool: "cls+mean" });
    expect([cls.dim, mean.dim, both.dim]).toEqual([8, 8, 16]);
    for (let i = 0; i < 5; i++) {
      expect(Array.from(both.features.subarray(i * 16, i * 16 + 8))).toEqual(
        Array.from(cls.features.subarray(i * 8, i * 8 + 8)),
      );
      expect(Array.from(both.features.subarray(i * 16 + 8, i * 16 + 16))).toEqual(
        Array.from(mean.features.subarray(i * 8, i * 8 + 8)),
      );
    }
    // The mean pool is the mean of the 4 patch tokens of a direct forward.
    const x = tf.tensor4d((ds.get(3) as Sample).image as Float32Array, [1, 8, 8, 3]);
    vit.eval();
    const out = vit.forward(x);
    const expectedMean = tf.mean(out.patchTokens, 1);
    expect(Array.from(mean.features.subarray(24, 32))).toEqual(
      Array.from(expectedMean.dataSync()).map((v) => expect.closeTo(v, 6)),
    );
    tf.dispose([x, out.cls, out.patchTokens, out.tokens, expectedMean]);

    const dir = tempDir();
    expect((await extractFeatures(vit, ds, { cache: { dir } })).cache).toBe("computed");
    expect((await extractFeatures(vit, ds, { cache: { dir } })).cache).toBe("hit");
    expect((await extractFeatures(vit, ds, { cache: { dir }, pool: "mean" })).cache).toBe(
      "computed",
    );
    // Fine-tuning one weight changes the weights hash, hence the key.
    const w = vit.stateDict()["blocks.1.mlp.fc2.bias"] as tf.Variable;
    const bumped = tf.add(w, 0.01);
    w.assign(bumped);
    bumped.dispose();
    const fresh = await extractFeatures(vit, ds, { cache: { dir } });
    expect(fresh.cache).toBe("computed");
    expect(fresh.features).not.toEqual(cls.features);
    vit.dispose();
  });

  it("accepts @sit/data's evalTransform for images of different sizes, and says so when it is missing", async () => {
    const mixed: Dataset = {
      length: 3,
      labels: Int32Array.from([0, 1, 0]),
      get: (i: number) => {
        const side = 4 + 2 * i;
        return {
          image: new Uint8Array(side * side * 3).fill(60 * (i + 1)),
          height: side,
          width: side,
          channels: 3,
          label: i % 2,
        };
      },
    };
    await expect(extractFeatures(meanBackbone(), mixed, { batchSize: 3 })).rejects.toThrow(
      /differ in size.*give a transform that resizes/,
    );
    const out = await extractFeatures(meanBackbone(), mixed, {
      batchSize: 3,
      transform: evalTransform({ size: 4, normalize: null }),
    });
    // Constant images stay constant through resize + crop: channel means are the pixel values.
    expect(Array.from(out.features)).toEqual(
      [60, 60, 60, 120, 120, 120, 180, 180, 180].map((v) => expect.closeTo(v / 255, 5)),
    );
  });
});
