import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  ConcatDataset,
  DATASET_STATS,
  type Dataset,
  IMAGENET_STATS,
  ImageFolderDataset,
  type NormalizeStats,
  Stl10Dataset,
  SubsetDataset,
  findBundledFashionMnist,
  loadCifar10,
  loadCifar100,
  loadCub200,
  loadFashionMnist,
  loadFgvcAircraft,
  loadFlowers102,
  loadMnistLike,
  loadOxfordPets,
  loadStanfordCars,
} from "@sit/data";
import { moduleDir } from "./here";
import { UsageError } from "./io";

/** Dataset names the CLI knows; anything else is read as a path. */
export const DATASET_NAMES = [
  "fashion-mnist-bundled",
  "fashion-mnist",
  "mnist",
  "cifar10",
  "cifar100",
  "stl10",
  "flowers102",
  "pets",
  "cub200",
  "aircraft",
  "cars",
  "image-folder",
] as const;

/** What a split is used for: SSL pretraining (may include unlabelled data), labelled training, or held-out test. */
export type SplitRole = "pretrain" | "train" | "test";

/** Where the data comes from (a name from {@link DATASET_NAMES} or a path) and where its files are. */
export interface DataSource {
  /** A name from {@link DATASET_NAMES}, or a path to a dataset folder. */
  dataset: string;
  /** Folder holding the named dataset's files (not needed for `fashion-mnist-bundled` or a path). */
  dataDir?: string;
}

/** A resolved dataset kind: how to open each split and what its images are like. */
export interface DatasetKind {
  /** Canonical name (a path resolves to the kind its files show). */
  name: string;
  /** Folder the files were found in. */
  root: string;
  /** Channels of the stored images. */
  nativeChannels: 1 | 3;
  /** Small images stored at their final size (IDX, CIFAR, STL): evaluation resizes without a crop margin. */
  lowRes: boolean;
  /** Normalisation statistics of the dataset, when known (else ImageNet's). */
  stats: NormalizeStats;
  open(role: SplitRole): Dataset;
}

/** The bundled Fashion-MNIST subset, searched from the working directory, then from this package. */
export function bundledFashionMnistDir(): string {
  try {
    return findBundledFashionMnist(process.cwd());
  } catch (err) {
    const here = moduleDir();
    if (here) {
      try {
        return findBundledFashionMnist(here);
      } catch {
        // fall through to the first error, which names the working directory
      }
    }
    throw err;
  }
}

const has = (dir: string, ...names: string[]) => names.some((n) => existsSync(join(dir, n)));

function needDir(source: DataSource, name: string): string {
  if (!source.dataDir)
    throw new UsageError(
      `--data-dir: dataset "${name}" needs the folder holding its files (e.g. --data-dir data/${name}), got none`,
    );
  const dir = resolve(source.dataDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(
      `--data-dir: expected an existing folder, got ${JSON.stringify(source.dataDir)}`,
    );
  return dir;
}

function idxKind(name: string, root: string, fashion: boolean): DatasetKind {
  return {
    name,
    root,
    nativeChannels: 1,
    lowRes: true,
    stats: DATASET_STATS[fashion ? "fashion-mnist" : "mnist"],
    open: (role) =>
      fashion
        ? loadFashionMnist(root, role === "test" ? "test" : "train")
        : loadMnistLike(root, role === "test" ? "test" : "train"),
  };
}

function cifarKind(name: "cifar10" | "cifar100", root: string): DatasetKind {
  return {
    name,
    root,
    nativeChannels: 3,
    lowRes: true,
    stats: DATASET_STATS[name === "cifar10" ? "cifar-10" : "cifar-100"],
    open: (role) =>
      name === "cifar10"
        ? loadCifar10(root, role === "test" ? "test" : "train")
        : loadCifar100(root, role === "test" ? "test" : "train"),
  };
}

function stlKind(root: string): DatasetKind {
  return {
    name: "stl10",
    root,
    nativeChannels: 3,
    lowRes: true,
    stats: DATASET_STATS["stl-10"],
    // SiT pretrains STL-10 on train + unlabeled (spec §8) and evaluates on train / test.
    open: (role) =>
      role === "pretrain"
        ? new ConcatDataset([new Stl10Dataset(root, "train"), new Stl10Dataset(root, "unlabeled")])
        : new Stl10Dataset(root, role),
  };
}

function fileListKind(
  name: string,
  root: string,
  open: (split: "trainval" | "train" | "test") => Dataset,
  trainSplit: "trainval" | "train",
): DatasetKind {
  return {
    name,
    root,
    nativeChannels: 3,
    lowRes: false,
    stats: IMAGENET_STATS,
    open: (role) => open(role === "test" ? "test" : trainSplit),
  };
}

function imageFolderKind(root: string): DatasetKind {
  // root/train/<class>/… and root/test/<class>/…, or a single root/<class>/… (no test split).
  const split = has(root, "train") && statSync(join(root, "train")).isDirectory();
  return {
    name: "image-folder",
    root,
    nativeChannels: 3,
    lowRes: false,
    stats: IMAGENET_STATS,
    open: (role) => {
      if (!split) {
        if (role === "test")
          throw new UsageError(
            `--dataset: ${root} has no test split (expected ${join(root, "test")}/<class>/… beside ${join(root, "train")})`,
          );
        return new ImageFolderDataset(root);
      }
      const dir = join(root, role === "test" ? "test" : "train");
      if (!existsSync(dir))
        throw new UsageError(`--dataset: ${root} has no ${role} split (expected ${dir}/<class>/…)`);
      return new ImageFolderDataset(dir);
    },
  };
}

/** Recognise a dataset folder by its files. */
function kindFromPath(path: string): DatasetKind {
  const root = resolve(path);
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new UsageError(
      `--dataset: expected one of ${DATASET_NAMES.join(", ")} or an existing folder, got ${JSON.stringify(path)}`,
    );
  if (has(root, "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"))
    return idxKind(/fashion/i.test(root) ? "fashion-mnist" : "mnist", root, /fashion/i.test(root));
  if (has(root, "data_batch_1.bin")) return cifarKind("cifar10", root);
  if (has(root, "train.bin") && has(root, "fine_label_names.txt", "coarse_label_names.txt"))
    return cifarKind("cifar100", root);
  if (has(root, "train_X.bin")) return stlKind(root);
  if (readdirSync(root, { withFileTypes: true }).some((d) => d.isDirectory()))
    return imageFolderKind(root);
  throw new UsageError(
    `--dataset: ${root} holds no dataset this CLI recognises (IDX files, CIFAR or STL-10 binaries, or class folders)`,
  );
}

/** Resolve a dataset name or path to a {@link DatasetKind}. */
export function resolveDataset(source: DataSource): DatasetKind {
  const name = source.dataset;
  switch (name) {
    case "fashion-mnist-bundled":
      return { ...idxKind(name, bundledFashionMnistDir(), true) };
    case "fashion-mnist":
      return idxKind(name, needDir(source, name), true);
    case "mnist":
      return idxKind(name, needDir(source, name), false);
    case "cifar10":
    case "cifar100":
      return cifarKind(name, needDir(source, name));
    case "stl10":
      return stlKind(needDir(source, name));
    case "flowers102":
      return fileListKind(
        name,
        needDir(source, name),
        (s) => loadFlowers102(needDir(source, name), s),
        "trainval",
      );
    case "pets":
      return fileListKind(
        name,
        needDir(source, name),
        (s) => loadOxfordPets(needDir(source, name), s === "test" ? "test" : "trainval"),
        "trainval",
      );
    case "cub200":
      return fileListKind(
        name,
        needDir(source, name),
        (s) => loadCub200(needDir(source, name), s === "test" ? "test" : "train"),
        "train",
      );
    case "aircraft":
      return fileListKind(
        name,
        needDir(source, name),
        (s) => loadFgvcAircraft(needDir(source, name), s),
        "trainval",
      );
    case "cars":
      return fileListKind(
        name,
        needDir(source, name),
        (s) => loadStanfordCars(needDir(source, name), s === "test" ? "test" : "train"),
        "train",
      );
    case "image-folder":
      return imageFolderKind(needDir(source, name));
    default:
      return kindFromPath(name);
  }
}

/** The first `limit` samples, or `count` evenly spaced ones (deterministic subsets for quick runs and monitors). */
export function limitDataset(dataset: Dataset, limit: number | undefined, spread = false): Dataset {
  if (limit === undefined || limit >= dataset.length) return dataset;
  const indices = spread
    ? Array.from({ length: limit }, (_, i) => Math.floor((i * dataset.length) / limit))
    : Array.from({ length: limit }, (_, i) => i);
  return new SubsetDataset(dataset, indices);
}
