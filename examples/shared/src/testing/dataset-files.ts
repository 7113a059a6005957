import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Rng } from "@sit/core";
import sharp from "sharp";
import type { PaperDataset } from "../datasets";
import { encodeMat } from "./mat-writer";

/**
 * Writers of tiny copies of the paper datasets in their distributed formats (CIFAR binary batches,
 * STL-10 binary, Flowers-102 `.mat` + `jpg/`, Pets/CUB/Aircraft split lists + JPEGs, the Stanford
 * Cars devkit), laid out as after download + extraction, for smoke tests of the examples. Images
 * are small deterministic noise; `n` images per split.
 */
export type DatasetWriter = (root: string, n: number) => Promise<void>;

function write(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}

function pixels(rng: Rng, count: number): Uint8Array {
  return Uint8Array.from({ length: count }, () => rng.int(0, 256));
}

async function jpeg(path: string, rng: Rng): Promise<void> {
  const height = rng.int(36, 56);
  const width = rng.int(36, 56);
  mkdirSync(dirname(path), { recursive: true });
  await sharp(Buffer.from(pixels(rng, height * width * 3)), { raw: { height, width, channels: 3 } })
    .jpeg({ quality: 90 })
    .toFile(path);
}

/** Records of `header` label bytes + 3072 planar pixels (CIFAR). */
function cifarRecords(rng: Rng, n: number, labels: (i: number) => number[]): Uint8Array {
  const size = labels(0).length + 3072;
  const out = new Uint8Array(n * size);
  for (let i = 0; i < n; i++) {
    out.set(labels(i), i * size);
    out.set(pixels(rng, 3072), i * size + labels(i).length);
  }
  return out;
}

const lines = (items: string[]) => `${items.join("\n")}\n`;

export const DATASET_WRITERS: Readonly<Record<PaperDataset, DatasetWriter>> = {
  cifar10: async (root, n) => {
    const rng = Rng.seed(10);
    const dir = join(root, "cifar-10-batches-bin");
    for (let b = 1; b <= 5; b++)
      write(
        join(dir, `data_batch_${b}.bin`),
        cifarRecords(rng, n, (i) => [(i + b) % 10]),
      );
    write(
      join(dir, "test_batch.bin"),
      cifarRecords(rng, n, (i) => [i % 10]),
    );
    write(join(dir, "batches.meta.txt"), lines(Array.from({ length: 10 }, (_, i) => `class${i}`)));
  },
  cifar100: async (root, n) => {
    const rng = Rng.seed(100);
    const dir = join(root, "cifar-100-binary");
    write(
      join(dir, "train.bin"),
      cifarRecords(rng, n, (i) => [i % 20, (7 * i) % 100]),
    );
    write(
      join(dir, "test.bin"),
      cifarRecords(rng, n, (i) => [i % 20, (3 * i) % 100]),
    );
  },
  stl10: async (root, n) => {
    const rng = Rng.seed(11);
    const dir = join(root, "stl10_binary");
    const bytes = 96 * 96 * 3;
    for (const split of ["train", "test"]) {
      write(join(dir, `${split}_X.bin`), pixels(rng, n * bytes));
      write(
        join(dir, `${split}_y.bin`),
        Uint8Array.from({ length: n }, (_, i) => 1 + (i % 10)),
      );
    }
    write(join(dir, "unlabeled_X.bin"), pixels(rng, n * bytes));
    write(join(dir, "class_names.txt"), lines(Array.from({ length: 10 }, (_, i) => `class${i}`)));
  },
  flowers: async (root, n) => {
    const rng = Rng.seed(102);
    const total = 3 * n;
    for (let id = 1; id <= total; id++)
      await jpeg(join(root, "jpg", `image_${String(id).padStart(5, "0")}.jpg`), rng);
    const ids = (start: number) => Array.from({ length: n }, (_, i) => start + i + 1);
    write(
      join(root, "imagelabels.mat"),
      encodeMat({
        labels: { kind: "double", values: Array.from({ length: total }, (_, i) => 1 + (i % 102)) },
      }),
    );
    write(
      join(root, "setid.mat"),
      encodeMat({
        trnid: { kind: "double", values: ids(0) },
        valid: { kind: "double", values: ids(n) },
        tstid: { kind: "double", values: ids(2 * n) },
      }),
    );
  },
  pets: async (root, n) => {
    const rng = Rng.seed(37);
    const breeds = ["Abyssinian", "american_bulldog", "Bengal"];
    for (const split of ["trainval", "test"]) {
      const list: string[] = ["#Image CLASS-ID SPECIES BREED ID"];
      for (let i = 0; i < n; i++) {
        const c = i % breeds.length;
        const name = `${breeds[c]}_${split === "test" ? 100 + i : i + 1}`;
        await jpeg(join(root, "images", `${name}.jpg`), rng);
        list.push(`${name} ${c + 1} ${c === 1 ? 2 : 1} ${c + 1}`);
      }
      write(join(root, "annotations", `${split}.txt`), lines(list));
    }
  },
  cub: async (root, n) => {
    const rng = Rng.seed(200);
    const dir = join(root, "CUB_200_2011");
    const classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"];
    const images: string[] = [];
    const labels: string[] = [];
    const split: string[] = [];
    for (let id = 1; id <= 2 * n; id++) {
      const c = id % classes.length;
      const path = `${classes[c]}/img_${id}.jpg`;
      await jpeg(join(dir, "images", path), rng);
      images.push(`${id} ${path}`);
      labels.push(`${id} ${c + 1}`);
      split.push(`${id} ${id <= n ? 1 : 0}`);
    }
    write(join(dir, "images.txt"), lines(images));
    write(join(dir, "image_class_labels.txt"), lines(labels));
    write(join(dir, "train_test_split.txt"), lines(split));
    write(join(dir, "classes.txt"), lines(classes.map((c, i) => `${i + 1} ${c}`)));
  },
  aircraft: async (root, n) => {
    const rng = Rng.seed(1000);
    const data = join(root, "fgvc-aircraft-2013b", "data");
    const variants = ["707-320", "727-200", "A300B4"];
    write(join(data, "variants.txt"), lines(variants));
    for (const [s, split] of ["trainval", "test"].entries()) {
      const list: string[] = [];
      for (let i = 0; i < n; i++) {
        const id = String(1000000 + s * 1000 + i);
        await jpeg(join(data, "images", `${id}.jpg`), rng);
        list.push(`${id} ${variants[i % variants.length]}`);
      }
      write(join(data, `images_variant_${split}.txt`), lines(list));
    }
  },
  cars: async (root, n) => {
    const rng = Rng.seed(196);
    const annotations = async (split: string) => {
      const elements = [];
      for (let i = 0; i < n; i++) {
        const fname = `${String(i + 1).padStart(5, "0")}.jpg`;
        await jpeg(join(root, `cars_${split}`, fname), rng);
        elements.push({
          bbox_x1: { kind: "double" as const, values: [1] },
          bbox_y1: { kind: "double" as const, values: [1] },
          bbox_x2: { kind: "double" as const, values: [30] },
          bbox_y2: { kind: "double" as const, values: [30] },
          class: { kind: "double" as const, values: [1 + (i % 196)] },
          fname: { kind: "char" as const, text: fname },
        });
      }
      return encodeMat({ annotations: { kind: "struct", elements } });
    };
    write(join(root, "devkit", "cars_train_annos.mat"), await annotations("train"));
    write(join(root, "cars_test_annos_withlabels.mat"), await annotations("test"));
    write(
      join(root, "devkit", "cars_meta.mat"),
      encodeMat({
        class_names: {
          kind: "cell",
          cells: Array.from({ length: 196 }, (_, i) => ({
            kind: "char" as const,
            text: `car ${i + 1}`,
          })),
        },
      }),
    );
  },
};
