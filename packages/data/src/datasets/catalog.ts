import { DATASET_SOURCES } from "../download/sources";

/** One named dataset: what tools (the CLI, the examples) show and need to fetch and read it. */
export interface DatasetEntry {
  title: string;
  /** Key of {@link DATASET_SOURCES}, when the dataset can be downloaded. */
  source?: string;
  /** Folder the loader reads, relative to the download directory ("." when there is none). */
  readerDir: string;
  numClasses: number;
}

function entry(title: string, numClasses: number, source?: string): DatasetEntry {
  return {
    title,
    numClasses,
    ...(source ? { source } : {}),
    readerDir: source ? DATASET_SOURCES[source].readerDir : ".",
  };
}

/**
 * The datasets that have a loader here, by the one name every tool uses for them (`sit
 * --dataset cifar10`, the examples' configs). Stanford Cars has no download source: its
 * original host no longer serves the files.
 */
export const DATASETS = {
  "fashion-mnist": entry("Fashion-MNIST", 10, "fashion-mnist"),
  mnist: entry("MNIST", 10, "mnist"),
  cifar10: entry("CIFAR-10", 10, "cifar-10"),
  cifar100: entry("CIFAR-100", 100, "cifar-100"),
  stl10: entry("STL-10", 10, "stl-10"),
  flowers102: entry("Oxford Flowers-102", 102, "flowers-102"),
  pets: entry("Oxford-IIIT Pets", 37, "oxford-pets"),
  cub200: entry("CUB-200-2011", 200, "cub-200-2011"),
  aircraft: entry("FGVC-Aircraft (variants)", 100, "fgvc-aircraft"),
  cars: entry("Stanford Cars", 196),
} as const satisfies Record<string, DatasetEntry>;

/** A name of {@link DATASETS}. */
export type DatasetName = keyof typeof DATASETS;

/** The names of {@link DATASETS}, in order. */
export const DATASET_NAMES = Object.keys(DATASETS) as DatasetName[];

/** Whether `name` names an entry of {@link DATASETS}. */
export function isDatasetName(name: unknown): name is DatasetName {
  return typeof name === "string" && Object.hasOwn(DATASETS, name);
}
