import { existsSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, IOError } from "@sit/core";
import { ConcatDataset, DATASETS, type Dataset, type DatasetEntry } from "@sit/data";
import {
  Stl10Dataset,
  loadCifar10,
  loadCifar100,
  loadCub200,
  loadFgvcAircraft,
  loadFlowers102,
  loadOxfordPets,
  loadStanfordCars,
} from "@sit/data/node";

/** The eight datasets of the paper's main table. */
export const PAPER_DATASETS = [
  "flowers",
  "pets",
  "cub",
  "aircraft",
  "stl10",
  "cars",
  "cifar10",
  "cifar100",
] as const;

export type PaperDataset = (typeof PAPER_DATASETS)[number];

/** The splits one example uses: pretraining images (labels unused), fine-tuning and test sets. */
export interface ExampleSplits {
  pretrain: Dataset;
  train: Dataset;
  test: Dataset;
}

/**
 * How one paper dataset is fetched and read: @sit/data's catalog entry (title, download source,
 * reader folder — also accepted under `--data` — and classes) plus the splits the paper uses.
 */
export interface DatasetSpec extends DatasetEntry {
  name: PaperDataset;
  /** Which splits are used, in words (README and results). */
  splits: string;
  open(root: string): ExampleSplits;
}

const same = (train: Dataset, test: Dataset): ExampleSplits => ({ pretrain: train, train, test });

/**
 * The datasets and the splits the SiT code uses (spec §8): pretraining and fine-tuning on the same
 * training split (STL-10 pretrains on train + unlabeled), evaluation on the test split.
 */
export const DATASET_SPECS: Readonly<Record<PaperDataset, DatasetSpec>> = {
  flowers: {
    name: "flowers",
    ...DATASETS.flowers102,
    splits: "train+val (2,040) / test (6,149)",
    open: (root) => same(loadFlowers102(root, "trainval"), loadFlowers102(root, "test")),
  },
  pets: {
    name: "pets",
    ...DATASETS.pets,
    splits: "trainval (3,680) / test (3,669)",
    open: (root) => same(loadOxfordPets(root, "trainval"), loadOxfordPets(root, "test")),
  },
  cub: {
    name: "cub",
    ...DATASETS.cub200,
    splits: "train (5,994) / test (5,794)",
    open: (root) => same(loadCub200(root, "train"), loadCub200(root, "test")),
  },
  aircraft: {
    name: "aircraft",
    ...DATASETS.aircraft,
    splits: "trainval (6,667) / test (3,333)",
    open: (root) => same(loadFgvcAircraft(root, "trainval"), loadFgvcAircraft(root, "test")),
  },
  stl10: {
    name: "stl10",
    ...DATASETS.stl10,
    splits:
      "pretraining on train + unlabeled (105,000); fine-tuning on train (5,000) / test (8,000)",
    open: (root) => {
      const train = new Stl10Dataset(root, "train");
      return {
        pretrain: new ConcatDataset([train, new Stl10Dataset(root, "unlabeled")]),
        train,
        test: new Stl10Dataset(root, "test"),
      };
    },
  },
  cars: {
    name: "cars",
    ...DATASETS.cars,
    splits: "train (8,144) / test (8,041)",
    open: (root) => same(loadStanfordCars(root, "train"), loadStanfordCars(root, "test")),
  },
  cifar10: {
    name: "cifar10",
    ...DATASETS.cifar10,
    splits: "train (50,000) / test (10,000)",
    open: (root) => same(loadCifar10(root, "train"), loadCifar10(root, "test")),
  },
  cifar100: {
    name: "cifar100",
    ...DATASETS.cifar100,
    splits: "train (50,000) / test (10,000)",
    open: (root) => same(loadCifar100(root, "train"), loadCifar100(root, "test")),
  },
};

/** The spec of a paper dataset, or a ConfigError listing the known names. */
export function datasetSpec(name: string): DatasetSpec {
  const spec = (DATASET_SPECS as Record<string, DatasetSpec>)[name];
  if (!spec)
    throw new ConfigError(
      `dataset: expected one of ${PAPER_DATASETS.join(", ")}, got ${JSON.stringify(name)}`,
    );
  return spec;
}

/**
 * The folder a reader opens for a user-given `--data` path: the path itself, or its
 * `readerDir` sub-folder when the user pointed at the download directory above it.
 */
export function readerRoot(spec: DatasetSpec, data: string): string {
  if (!existsSync(data)) throw new IOError(`--data: ${data} does not exist`);
  const nested = join(data, spec.readerDir);
  return spec.readerDir !== "." && existsSync(nested) ? nested : data;
}
