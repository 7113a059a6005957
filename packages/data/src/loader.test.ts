import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { IOError, Rng } from "@sit/core";
import { maxAbsoluteError } from "@sit/testing";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { DecodePool } from "./datasets/decode";
import { ArrayDataset } from "./datasets/idx";
import { ImageFolderDataset } from "./datasets/image-files";
import { DataLoader, type ViewsBatch, disposeBatch } from "./loader";
import { evalTransform, sitTwoViewTransform } from "./transforms/sit";
import type { Dataset, Sample } from "./types";

function arrayDataset(n: number, labelled = true): ArrayDataset {
  const rng = Rng.seed(n);
  const images = new Uint8Array(n * 8 * 8);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(0, 256);
  const labels = labelled ? Int32Array.from({ length: n }, (_, i) => i % 4) : undefined;
  return new ArrayDataset(images, 8, 8, 1, labels);
}

const small = () => sitTwoViewTransform({ size: 8, interpolation: "bilinear" });

async function collect(loader: DataLoader<"views">, epoch: number): Promise<ViewsBatch[]> {
  const out: ViewsBatch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

describe("DataLoader", () => {
  it("shuffles with the seed, batches, drops the last batch on request", async () => {
    const ds = arrayDataset(10);
    const loader = new DataLoader(ds, { transform: small(), batchSize: 4, seed: 1 });
    expect(loader.batchesPerEpoch).toBe(3);
    const batches = await collect(loader, 0);
    expect(batches.map((b) => b.indices.length)).toEqual([4, 4, 2]);
    const seen = batches.flatMap((b) => Array.from(b.indices));
    expect([...seen].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(seen).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(batches[0].labels!)).toEqual(Array.from(batches[0].indices, (i) => i % 4));
    expect(batches[0].views[0].shape).toEqual([4, 8, 8, 3]);
    batches.forEach(disposeBatch);
    const dropping = new DataLoader(ds, { transform: small(), batchSize: 4, dropLast: true });
    expect(dropping.batchesPerEpoch).toBe(2);
    const kept = await collect(dropping, 0);
    expect(kept.length).toBe(2);
    kept.forEach(disposeBatch);
    const ordered = new DataLoader(ds, { transform: small(), batchSize: 5, shuffle: false });
    expect(Array.from(ordered.epochOrder(3))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("a seed fixes a whole epoch, whatever the prefetch depth; epochs differ", async () => {
    const ds = arrayDataset(12);
    const a = await collect(
      new DataLoader(ds, { transform: small(), batchSize: 5, seed: 9, prefetch: 1, readAhead: 1 }),
      2,
    );
    const b = await collect(
      new DataLoader(ds, { transform: small(), batchSize: 5, seed: 9, prefetch: 4 }),
      2,
    );
    const c = await collect(new DataLoader(ds, { transform: small(), batchSize: 5, seed: 9 }), 3);
    for (let k = 0; k < a.length; k++) {
      expect(Array.from(a[k].indices)).toEqual(Array.from(b[k].indices));
      expect(maxAbsoluteError(a[k].views[0], b[k].views[0])).toBe(0);
      expect(maxAbsoluteError(a[k].views[1], b[k].views[1])).toBe(0);
    }
    expect(a.flatMap((x) => Array.from(x.indices))).not.toEqual(
      c.flatMap((x) => Array.from(x.indices)),
    );
    [...a, ...b, ...c].forEach(disposeBatch);
  });

  it("runs several epochs; unlabeled data has no labels; eval transform yields images", async () => {
    const ds = arrayDataset(6, false);
    const loader = new DataLoader(ds, {
      transform: small(),
      batchSize: 4,
      epochs: 3,
      startEpoch: 1,
    });
    const epochs: number[] = [];
    for await (const batch of loader) {
      expect(batch.labels).toBeUndefined();
      epochs.push(batch.epoch);
      disposeBatch(batch);
    }
    expect(epochs).toEqual([1, 1, 2, 2]);
    const evalLoader = new DataLoader(arrayDataset(5), {
      transform: evalTransform({ size: 8, resize: 8 }),
      batchSize: 5,
      shuffle: false,
    });
    for await (const batch of evalLoader.epoch(0)) {
      expect(batch.images.shape).toEqual([5, 8, 8, 3]);
      expect(Array.from(batch.indices)).toEqual([0, 1, 2, 3, 4]);
      batch.images.dispose();
    }
  });

  it("breaking early or close() disposes prefetched batches; no tensors leak", async () => {
    const ds = arrayDataset(40);
    const before = tf.memory().numTensors;
    const loader = new DataLoader(ds, { transform: small(), batchSize: 4, prefetch: 3 });
    for await (const batch of loader.epoch(0)) {
      await new Promise((r) => setTimeout(r, 20)); // let the prefetcher fill its queue
      disposeBatch(batch);
      break;
    }
    expect(tf.memory().numTensors).toBe(before);
    const it2 = loader.epoch(1);
    const first = await it2.next();
    await new Promise((r) => setTimeout(r, 20));
    await loader.close();
    disposeBatch(first.value as ViewsBatch);
    expect(tf.memory().numTensors).toBe(before);
    expect((await it2.next()).done).toBe(true);
  });

  it("a failing sample surfaces as the error of that batch, after the earlier batches", async () => {
    const base = arrayDataset(8);
    const broken: Dataset = {
      length: 8,
      get: (i: number): Sample | Promise<Sample> => {
        if (i === 6) return Promise.reject(new IOError("sample 6: cannot decode"));
        return base.get(i);
      },
    };
    const loader = new DataLoader(broken, { transform: small(), batchSize: 4, shuffle: false });
    const before = tf.memory().numTensors;
    const it = loader.epoch(0);
    const first = await it.next();
    expect(Array.from((first.value as ViewsBatch).indices)).toEqual([0, 1, 2, 3]);
    disposeBatch(first.value as ViewsBatch);
    await expect(it.next()).rejects.toThrow(/sample 6: cannot decode/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("rejects bad options", () => {
    const ds = arrayDataset(3);
    expect(() => new DataLoader(ds, { transform: small(), batchSize: 0 })).toThrow(
      /batchSize: expected an integer in \[1/,
    );
    expect(() => new DataLoader(ds, { transform: small(), batchSize: 4, dropLast: true })).toThrow(
      /at most the dataset length 3/,
    );
    expect(() => new DataLoader(ds, { batchSize: 2 } as never)).toThrow(
      /transform: expected a BatchTransform/,
    );
  });
});

describe("DataLoader on an image folder decoded in worker threads", () => {
  const root = mkdtempSync(join(tmpdir(), "sit-data-loader-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("decodes JPEGs of different sizes into fixed-size views", async () => {
    for (let i = 0; i < 6; i++) {
      const dir = join(root, `class${i % 2}`);
      mkdirSync(dir, { recursive: true });
      const [h, w] = [30 + 7 * i, 50 - 3 * i];
      await sharp(Buffer.alloc(h * w * 3, 40 * i), { raw: { height: h, width: w, channels: 3 } })
        .jpeg()
        .toFile(join(dir, `${i}.jpg`));
    }
    const pool = new DecodePool(2);
    try {
      const ds = new ImageFolderDataset(root, { pool });
      const loader = new DataLoader(ds, {
        transform: sitTwoViewTransform({ size: 16 }),
        batchSize: 4,
        seed: 3,
      });
      const sizes: number[] = [];
      for await (const batch of loader.epoch(0)) {
        expect(batch.views[1].shape.slice(1)).toEqual([16, 16, 3]);
        sizes.push(batch.views[0].shape[0]);
        expect(batch.labels!.every((l) => l === 0 || l === 1)).toBe(true);
        disposeBatch(batch);
      }
      expect(sizes).toEqual([4, 2]);
    } finally {
      await pool.close();
    }
  });
});
