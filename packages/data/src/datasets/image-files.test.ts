import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { PNG } from "pngjs";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { DecodePool } from "./decode";
import { ImageFolderDataset } from "./image-files";
import { readMat } from "./matlab";
import {
  loadCub200,
  loadFgvcAircraft,
  loadFlowers102,
  loadOxfordPets,
  loadStanfordCars,
} from "./splits";

const tmp = mkdtempSync(join(tmpdir(), "sit-data-img-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const MAT_DIR = new URL("../../testdata/mat/", import.meta.url).pathname;

/** An RGBA PNG (pngjs) with pixel (y, x) = rgb(seed+y, 2x, 100); exact after decoding. */
function writePng(path: string, height: number, width: number, seed: number, gray = false): void {
  const png = new PNG({ width, height, colorType: gray ? 0 : 6, inputColorType: 6 });
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      const v = gray ? (seed + y + x) % 256 : 0;
      png.data[o] = gray ? v : (seed + y) % 256;
      png.data[o + 1] = gray ? v : (2 * x) % 256;
      png.data[o + 2] = gray ? v : 100;
      png.data[o + 3] = 255;
    }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, PNG.sync.write(png, { colorType: gray ? 0 : 6 }));
}

async function writeJpeg(
  path: string,
  height: number,
  width: number,
  value: number,
): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await sharp(Buffer.alloc(height * width * 3, value), { raw: { height, width, channels: 3 } })
    .jpeg({ quality: 95 })
    .toFile(path);
}

describe("image folders", () => {
  const root = join(tmp, "folder");
  writePng(join(root, "cat", "b.png"), 5, 7, 10);
  writePng(join(root, "cat", "a.png"), 6, 4, 20);
  writePng(join(root, "dog", "x.PNG"), 3, 3, 30, true);
  writeFileSync(join(root, "dog", "notes.txt"), "not an image");

  it("sorted classes and files, exact PNG pixels, grayscale → RGB", async () => {
    const ds = new ImageFolderDataset(root);
    expect(ds.classNames).toEqual(["cat", "dog"]);
    expect(ds.files.map((f) => f.slice(root.length + 1))).toEqual([
      "cat/a.png",
      "cat/b.png",
      "dog/x.PNG",
    ]);
    expect(Array.from(ds.labels!)).toEqual([0, 0, 1]);
    const b = await ds.get(1);
    expect([b.height, b.width, b.channels, b.label]).toEqual([5, 7, 3, 0]);
    const o = (3 * 7 + 5) * 3;
    expect(Array.from(b.image.slice(o, o + 3))).toEqual([13, 10, 100]);
    const g = await ds.get(2);
    expect(g.channels).toBe(3);
    const p = (2 * 3 + 1) * 3;
    expect(Array.from(g.image.slice(p, p + 3))).toEqual([33, 33, 33]);
    const native = await new ImageFolderDataset(root, { channels: 1 }).get(2);
    expect([native.channels, native.image[2 * 3 + 1]]).toEqual([1, 33]);
  });

  it("decodes JPEGs, in worker threads too, with optional resize at decode", async () => {
    const jroot = join(tmp, "jpeg");
    await writeJpeg(join(jroot, "a", "1.jpg"), 40, 60, 200);
    const pool = new DecodePool(2);
    try {
      const ds = new ImageFolderDataset(jroot, { pool });
      const s = await ds.get(0);
      expect([s.height, s.width, s.channels]).toEqual([40, 60, 3]);
      expect(Math.abs(s.image[100] - 200)).toBeLessThanOrEqual(2);
      const small = await new ImageFolderDataset(jroot, { pool, resizeShorter: 20 }).get(0);
      expect([small.height, small.width]).toEqual([20, 30]);
      const direct = await new ImageFolderDataset(jroot).get(0);
      expect(Buffer.from(direct.image).equals(Buffer.from(s.image))).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it("a corrupt JPEG is an error naming the file, or skipped and counted", async () => {
    const croot = join(tmp, "corrupt");
    await writeJpeg(join(croot, "a", "1.jpg"), 8, 8, 50);
    await writeJpeg(join(croot, "a", "2.jpg"), 8, 8, 60);
    const good = readFileSync(join(croot, "a", "2.jpg"));
    writeFileSync(join(croot, "a", "2.jpg"), good.subarray(0, good.length - 30)); // truncated
    await writeJpeg(join(croot, "b", "4.jpg"), 8, 8, 70);
    writeFileSync(join(croot, "b", "3.jpg"), "garbage");
    const strict = new ImageFolderDataset(croot);
    await expect(strict.get(1)).rejects.toThrow(/corrupt\/a\/2\.jpg: cannot decode image/);
    await expect(strict.get(2)).rejects.toThrow(/corrupt\/b\/3\.jpg: cannot decode image/);
    const lenient = new ImageFolderDataset(croot, { skipCorrupt: true });
    const s = await lenient.get(1); // → next decodable file, 3.jpg is corrupt too → 4.jpg
    expect(s.label).toBe(1);
    expect(Math.abs(s.image[0] - 70)).toBeLessThanOrEqual(2);
    expect(lenient.corruptCount).toBe(2);
    expect([...lenient.corruptFiles].map((f) => f.slice(croot.length + 1)).sort()).toEqual([
      "a/2.jpg",
      "b/3.jpg",
    ]);
  });

  it("empty or missing folders are clear errors", () => {
    mkdirSync(join(tmp, "empty-root"), { recursive: true });
    expect(() => new ImageFolderDataset(join(tmp, "empty-root"))).toThrow(/no class folders/);
    mkdirSync(join(tmp, "empty-class", "a"), { recursive: true });
    writePng(join(tmp, "empty-class", "b", "1.png"), 2, 2, 0);
    expect(() => new ImageFolderDataset(join(tmp, "empty-class"))).toThrow(
      /empty-class\/a: class folder "a" has no images/,
    );
    expect(() => new ImageFolderDataset(join(tmp, "missing"))).toThrow(
      /missing: image folder not found/,
    );
  });
});

describe("MATLAB v5 files written by scipy.io.savemat", () => {
  it("numeric rows (plain and compressed)", () => {
    expect(
      Array.from((readMat(join(MAT_DIR, "imagelabels.mat")).labels as { data: Float64Array }).data),
    ).toEqual([1, 1, 2, 3, 2, 3, 1, 2, 3, 3]);
    const set = readMat(join(MAT_DIR, "setid.mat"));
    expect(set.tstid).toMatchObject({ kind: "numeric", dims: [1, 4] });
  });

  it("struct arrays and cells of strings", () => {
    const a = readMat(join(MAT_DIR, "cars_train_annos.mat")).annotations;
    expect(a.kind).toBe("struct");
    if (a.kind !== "struct") return;
    expect(a.fields).toEqual(["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]);
    expect(a.elements[0].fname).toMatchObject({ kind: "char", text: "00001.jpg" });
    expect(a.elements[2].class).toMatchObject({ kind: "numeric", className: "uint8" });
    const names = readMat(join(MAT_DIR, "cars_meta.mat")).class_names;
    expect(names.kind === "cell" && names.cells.map((c) => c.kind === "char" && c.text)).toEqual([
      "AM General Hummer SUV 2000",
      "Acura RL Sedan 2012",
      "Audi R8 Coupe 2012",
    ]);
  });

  it("rejects non-MAT and truncated files", () => {
    const bad = join(tmp, "bad.mat");
    writeFileSync(bad, Buffer.alloc(200, 65));
    expect(() => readMat(bad)).toThrow(/bad\.mat: not a MATLAB v5 \.mat file/);
    const cut = join(tmp, "cut.mat");
    writeFileSync(cut, readFileSync(join(MAT_DIR, "imagelabels.mat")).subarray(0, 180));
    expect(() => readMat(cut)).toThrow(/cut\.mat: truncated element/);
  });
});

describe("split lists as distributed", () => {
  it("Flowers-102: imagelabels.mat + setid.mat + jpg/", async () => {
    const root = join(tmp, "flowers");
    mkdirSync(root, { recursive: true });
    copyFileSync(join(MAT_DIR, "imagelabels.mat"), join(root, "imagelabels.mat"));
    copyFileSync(join(MAT_DIR, "setid.mat"), join(root, "setid.mat"));
    for (let i = 1; i <= 10; i++)
      await writeJpeg(join(root, "jpg", `image_${String(i).padStart(5, "0")}.jpg`), 6, 6, i * 20);
    const train = loadFlowers102(root, "train");
    expect(train.files.map((f) => f.slice(-15))).toEqual([
      "image_00001.jpg",
      "image_00003.jpg",
      "image_00004.jpg",
    ]);
    expect(Array.from(train.labels!)).toEqual([0, 1, 2]);
    expect(loadFlowers102(root, "trainval").length).toBe(6);
    const test = loadFlowers102(root, "test");
    expect(Array.from(test.labels!)).toEqual([0, 1, 2, 2]);
    expect(Math.abs((await test.get(3)).image[0] - 200)).toBeLessThanOrEqual(2);
    rmSync(join(root, "setid.mat"));
    expect(() => loadFlowers102(root, "train")).toThrow(/setid\.mat: cannot read/);
  });

  it("Oxford-IIIT Pets: annotations/{trainval,test}.txt", async () => {
    const root = join(tmp, "pets");
    mkdirSync(join(root, "annotations"), { recursive: true });
    writeFileSync(
      join(root, "annotations", "trainval.txt"),
      "Abyssinian_100 1 1 1\nbasset_hound_12 4 2 3\nAbyssinian_101 1 1 1\n",
    );
    for (const n of ["Abyssinian_100", "basset_hound_12", "Abyssinian_101"])
      await writeJpeg(join(root, "images", `${n}.jpg`), 5, 5, 10);
    const ds = loadOxfordPets(root, "trainval");
    expect(Array.from(ds.labels!)).toEqual([0, 3, 0]);
    expect(ds.classNames?.[3]).toBe("basset_hound");
    expect(ds.numClasses).toBe(37);
    expect((await ds.get(1)).label).toBe(3);
    expect(() => loadOxfordPets(root, "test")).toThrow(
      /annotations\/test\.txt: test split list not found/,
    );
  });

  it("CUB-200-2011: images.txt, image_class_labels.txt, train_test_split.txt, classes.txt", async () => {
    const dir = join(tmp, "cub", "CUB_200_2011");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "images.txt"),
      "1 001.Black_footed_Albatross/a_1.jpg\n2 002.Laysan_Albatross/b_2.jpg\n3 002.Laysan_Albatross/b_3.jpg\n",
    );
    writeFileSync(join(dir, "image_class_labels.txt"), "1 1\n2 2\n3 2\n");
    writeFileSync(join(dir, "train_test_split.txt"), "1 1\n2 0\n3 1\n");
    writeFileSync(
      join(dir, "classes.txt"),
      "1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n",
    );
    await writeJpeg(join(dir, "images", "001.Black_footed_Albatross", "a_1.jpg"), 4, 4, 0);
    const train = loadCub200(join(tmp, "cub"), "train");
    expect(train.files.map((f) => f.slice(dir.length + 1))).toEqual([
      "images/001.Black_footed_Albatross/a_1.jpg",
      "images/002.Laysan_Albatross/b_3.jpg",
    ]);
    expect(Array.from(train.labels!)).toEqual([0, 1]);
    expect(train.classNames).toEqual(["001.Black_footed_Albatross", "002.Laysan_Albatross"]);
    expect(Array.from(loadCub200(dir, "test").labels!)).toEqual([1]);
    rmSync(join(dir, "train_test_split.txt"));
    expect(() => loadCub200(dir, "train")).toThrow(
      /train_test_split\.txt: train\/test split list not found/,
    );
  });

  it("FGVC-Aircraft: data/images_variant_*.txt + variants.txt", () => {
    const data = join(tmp, "aircraft", "fgvc-aircraft-2013b", "data");
    mkdirSync(join(data, "images"), { recursive: true });
    writeFileSync(join(data, "variants.txt"), "707-320\nCessna 172\nA300B4\n");
    writeFileSync(
      join(data, "images_variant_trainval.txt"),
      "1025794 707-320\n0056978 Cessna 172\n",
    );
    writeFileSync(join(data, "images_variant_test.txt"), "1514522 A300B4\n0012345 Boeing 999\n");
    const ds = loadFgvcAircraft(join(tmp, "aircraft"), "trainval");
    expect(Array.from(ds.labels!)).toEqual([0, 1]);
    expect(ds.files[1].endsWith(join("data", "images", "0056978.jpg"))).toBe(true);
    expect(ds.numClasses).toBe(3);
    expect(() => loadFgvcAircraft(join(tmp, "aircraft"), "test")).toThrow(
      /names no class of variants\.txt/,
    );
    expect(() => loadFgvcAircraft(join(tmp, "aircraft"), "val")).toThrow(
      /images_variant_val\.txt: val split list not found/,
    );
  });

  it("Stanford Cars: devkit .mat annotations", () => {
    const root = join(tmp, "cars");
    mkdirSync(join(root, "devkit"), { recursive: true });
    copyFileSync(
      join(MAT_DIR, "cars_train_annos.mat"),
      join(root, "devkit", "cars_train_annos.mat"),
    );
    copyFileSync(join(MAT_DIR, "cars_meta.mat"), join(root, "devkit", "cars_meta.mat"));
    copyFileSync(
      join(MAT_DIR, "cars_test_annos_withlabels.mat"),
      join(root, "cars_test_annos_withlabels.mat"),
    );
    const train = loadStanfordCars(root, "train");
    expect(Array.from(train.labels!)).toEqual([1, 0, 2]);
    expect(train.files[2].endsWith(join("cars_train", "00003.jpg"))).toBe(true);
    expect(train.classNames?.[1]).toBe("Acura RL Sedan 2012");
    const test = loadStanfordCars(root, "test");
    expect(Array.from(test.labels!)).toEqual([2, 0]);
    rmSync(join(root, "cars_test_annos_withlabels.mat"));
    expect(() => loadStanfordCars(root, "test")).toThrow(/none of these files exists/);
  });
});
