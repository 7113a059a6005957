import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { CifarDataset, Stl10Dataset, loadCifar10, loadCifar100 } from "./binary";
import { ConcatDataset, SubsetDataset } from "./compose";
import { parseIdx } from "./idx";
import { loadIdxDataset, loadMnistLike } from "./idx-files";

const tmp = mkdtempSync(join(tmpdir(), "sit-data-bin-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** An IDX file per LeCun's spec: 0,0,type,rank, big-endian dims, data. */
function idx(type: number, dims: number[], data: Uint8Array): Uint8Array {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  dims.forEach((d, i) => {
    head.writeUInt32BE(d, 4 + 4 * i);
  });
  return Buffer.concat([head, data]);
}

const pixel = (n: number, y: number, x: number, c: number) =>
  (n * 31 + y * 7 + x * 3 + c * 50) % 256;

describe("IDX (MNIST / Fashion-MNIST format)", () => {
  const n = 5;
  const h = 4;
  const w = 3;
  const images = new Uint8Array(n * h * w);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) images[(i * h + y) * w + x] = pixel(i, y, x, 0);
  const labels = Uint8Array.from([3, 1, 4, 1, 5]);

  it("reads gzipped and raw files alike", () => {
    const dir = join(tmp, "idx");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "train-images-idx3-ubyte.gz"), gzipSync(idx(8, [n, h, w], images)));
    writeFileSync(join(dir, "train-labels-idx1-ubyte"), idx(8, [n], labels));
    const ds = loadMnistLike(dir, "train");
    expect(ds.length).toBe(5);
    expect(Array.from(ds.labels!)).toEqual([3, 1, 4, 1, 5]);
    const s = ds.get(2);
    expect([s.height, s.width, s.channels, s.label]).toEqual([4, 3, 1, 4]);
    expect(s.image[1 * 3 + 2]).toBe(pixel(2, 1, 2, 0));
    expect(ds.classNames?.[9]).toBe("9");
  });

  it("decodes big-endian non-byte types", () => {
    const data = Buffer.alloc(8);
    data.writeInt32BE(-7, 0);
    data.writeInt32BE(123456, 4);
    const arr = parseIdx(idx(0x0c, [2], data));
    expect(arr.dtype).toBe("int32");
    expect(Array.from(arr.data)).toEqual([-7, 123456]);
  });

  it("reports truncation and mismatched counts with the file name", () => {
    const images = join(tmp, "short-images");
    writeFileSync(images, idx(8, [10, 4, 3], new Uint8Array(50)));
    expect(() => loadIdxDataset({ images })).toThrow(
      /short-images: truncated: shape \[10,4,3\] needs 136 bytes, the file has 66/,
    );
    const ok = join(tmp, "ok-images");
    const lab = join(tmp, "bad-labels");
    writeFileSync(ok, idx(8, [2, 2, 2], new Uint8Array(8)));
    writeFileSync(lab, idx(8, [3], new Uint8Array(3)));
    expect(() => loadIdxDataset({ images: ok, labels: lab })).toThrow(
      /bad-labels: expected 2 labels/,
    );
    expect(() => loadMnistLike(join(tmp, "nowhere"), "test")).toThrow(/none of these files exists/);
  });

  it("a gzip stream may inflate to the size its IDX header declares, no more", () => {
    // 2 images of 28×28 declared (1,584 bytes), then 20 MB of zeros: ~20 KB on disk.
    const bomb = gzipSync(
      Buffer.concat([idx(8, [2, 28, 28], new Uint8Array(1568)), Buffer.alloc(20e6)]),
    );
    expect(bomb.length).toBeLessThan(40_000);
    const images = join(tmp, "bomb-images.gz");
    writeFileSync(images, bomb);
    expect(() => loadIdxDataset({ images })).toThrow(
      `${images}: gzip stream inflates to more than the 1584 bytes its header declares; refusing to inflate it`,
    );
    // A file of exactly the declared size reads, however well it compresses; so does a tiny one.
    writeFileSync(images, gzipSync(idx(8, [2000, 28, 28], new Uint8Array(2000 * 784))));
    expect(loadIdxDataset({ images }).length).toBe(2000);
    writeFileSync(images, gzipSync(idx(8, [1, 1, 1], Uint8Array.of(9))));
    expect(loadIdxDataset({ images }).get(0).image[0]).toBe(9);
    // Not IDX inside the gzip: said from the inflated head alone.
    writeFileSync(images, gzipSync(Buffer.from("hello world")));
    expect(() => loadIdxDataset({ images })).toThrow(/bomb-images\.gz: not an IDX file/);
  });
});

/** CIFAR record: label byte(s) then 1024 R, 1024 G, 1024 B bytes, rows of 32. */
function cifarRecord(labelBytes: number[], n: number): Uint8Array {
  const rec = new Uint8Array(labelBytes.length + 3072);
  rec.set(labelBytes);
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        rec[labelBytes.length + c * 1024 + y * 32 + x] = pixel(n, y, x, c);
  return rec;
}

describe("CIFAR binary", () => {
  const c10 = join(tmp, "cifar-10-batches-bin");
  const c100 = join(tmp, "cifar-100-binary");
  mkdirSync(c10, { recursive: true });
  mkdirSync(c100, { recursive: true });
  for (let b = 1; b <= 5; b++)
    writeFileSync(
      join(c10, `data_batch_${b}.bin`),
      Buffer.concat([cifarRecord([b], b * 10), cifarRecord([9], b * 10 + 1)]),
    );
  writeFileSync(join(c10, "test_batch.bin"), cifarRecord([7], 99));
  writeFileSync(
    join(c10, "batches.meta.txt"),
    "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
  );
  writeFileSync(
    join(c100, "train.bin"),
    Buffer.concat([cifarRecord([19, 99], 1), cifarRecord([0, 42], 2)]),
  );

  it("CIFAR-10 reads five batches in order, planar → HWC", () => {
    const ds = loadCifar10(c10, "train");
    expect(ds.length).toBe(10);
    expect(Array.from(ds.labels)).toEqual([1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
    expect(ds.classNames?.[9]).toBe("truck");
    const s = ds.get(3);
    expect([s.height, s.width, s.channels, s.label]).toEqual([32, 32, 3, 9]);
    // pixel (y=5, x=17) channel 2 of record n = 21
    expect(s.image[(5 * 32 + 17) * 3 + 2]).toBe(pixel(21, 5, 17, 2));
    expect(loadCifar10(c10, "test").get(0).label).toBe(7);
  });

  it("CIFAR-100 gives fine or coarse labels", () => {
    expect(Array.from(loadCifar100(c100, "train").labels)).toEqual([99, 42]);
    const coarse = loadCifar100(c100, "train", "coarse");
    expect(Array.from(coarse.labels)).toEqual([19, 0]);
    expect(coarse.numClasses).toBe(20);
    expect(coarse.get(1).image[(31 * 32 + 31) * 3]).toBe(pixel(2, 31, 31, 0));
  });

  it("a truncated batch file is a clear error naming it", () => {
    const dir = join(tmp, "cifar-truncated");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, "test_batch.bin");
    writeFileSync(file, Buffer.concat([cifarRecord([1], 0), cifarRecord([2], 1)]));
    truncateSync(file, 3073 + 1000);
    expect(() => new CifarDataset(dir, "cifar-10", { split: "test" })).toThrow(
      /test_batch\.bin: truncated or not in this format: 4073 bytes is not a whole number of 3073-byte records \(1 complete, 1000 bytes left over\)/,
    );
    expect(() => loadCifar10(dir, "train")).toThrow(/data_batch_1\.bin: file not found/);
  });
});

describe("STL-10 binary", () => {
  const dir = join(tmp, "stl10_binary");
  mkdirSync(dir, { recursive: true });
  // As distributed (read in Python with reshape(-1, 3, 96, 96) then transpose to (N, 96, 96, 3)
  // via axes (0, 3, 2, 1)): byte c·96² + col·96 + row holds pixel (row, col) of channel c.
  const image = (n: number) => {
    const b = new Uint8Array(3 * 96 * 96);
    for (let c = 0; c < 3; c++)
      for (let col = 0; col < 96; col++)
        for (let row = 0; row < 96; row++) b[c * 9216 + col * 96 + row] = pixel(n, row, col, c);
    return b;
  };
  writeFileSync(join(dir, "train_X.bin"), Buffer.concat([image(0), image(1), image(2)]));
  writeFileSync(join(dir, "train_y.bin"), Uint8Array.from([1, 10, 4]));
  writeFileSync(join(dir, "unlabeled_X.bin"), Buffer.concat([image(5), image(6)]));
  writeFileSync(
    join(dir, "class_names.txt"),
    "airplane\nbird\ncar\ncat\ndeer\ndog\nhorse\nmonkey\nship\ntruck\n",
  );

  it("reads column-major images and 1-based labels", () => {
    const ds = new Stl10Dataset(dir, "train");
    expect(Array.from(ds.labels!)).toEqual([0, 9, 3]);
    expect(ds.classNames?.[7]).toBe("monkey");
    const s = ds.get(1);
    expect([s.height, s.width, s.channels]).toEqual([96, 96, 3]);
    expect(s.image[(10 * 96 + 70) * 3 + 1]).toBe(pixel(1, 10, 70, 1));
    expect(s.image[(70 * 96 + 10) * 3 + 0]).toBe(pixel(1, 70, 10, 0));
  });

  it("the unlabeled split reads from disk and has no labels", () => {
    const ds = new Stl10Dataset(dir, "unlabeled");
    expect(ds.length).toBe(2);
    expect(ds.labels).toBeUndefined();
    expect(ds.numClasses).toBeUndefined();
    const s = ds.get(1);
    expect(s.label).toBeUndefined();
    expect(s.image[(95 * 96 + 3) * 3 + 2]).toBe(pixel(6, 95, 3, 2));
    // train + unlabeled for pretraining: labels dropped, samples keep their own.
    const both = new ConcatDataset([new Stl10Dataset(dir, "train"), ds]);
    expect(both.length).toBe(5);
    expect(both.labels).toBeUndefined();
    expect((both.get(0) as { label?: number }).label).toBe(0);
    expect((both.get(4) as { label?: number }).label).toBeUndefined();
    const sub = new SubsetDataset(both, [4, 1]);
    expect((sub.get(1) as { label?: number }).label).toBe(9);
    ds.close();
  });

  it("mismatched label count is an error", () => {
    writeFileSync(join(dir, "test_X.bin"), image(0));
    writeFileSync(join(dir, "test_y.bin"), Uint8Array.from([1, 2]));
    expect(() => new Stl10Dataset(dir, "test")).toThrow(/test_y\.bin: expected 1 labels/);
  });
});
