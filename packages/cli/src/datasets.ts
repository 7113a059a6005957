import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { IOError } from "@sit/core";
import {
  ConcatDataset,
  DATASET_NAMES as CATALOG_NAMES,
  DATASET_STATS,
  type Dataset,
  IMAGENET_STATS,
  type NormalizeStats,
  SubsetDataset,
} from "@sit/data";
import {
  type FileListDataset,
  ImageFolderDataset,
  Stl10Dataset,
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
} from "@sit/data/node";
import { downloadHint, downloadNamedDataset, downloadedReaderDir } from "./dataset-download";
import { moduleDir } from "./here";
import { type CliIO, UsageError } from "./io";

/**
 * Dataset names the CLI knows: @sit/data's catalog, the bundled Fashion-MNIST subset and a
 * generic image folder; anything else is read as a path.
 */
export const DATASET_NAMES: readonly string[] = [
  "fashion-mnist-bundled",
  ...CATALOG_NAMES,
  "image-folder",
];

/** What a split is used for: SSL pretraining (may include unlabelled data), labelled training, or held-out test. */
export type SplitRole = "pretrain" | "train" | "test";

/** Where the data comes from (a name from {@link DATASET_NAMES} or a path) and where its files are. */
export interface DataSource {
  /** A name from {@link DATASET_NAMES}, or a path to a dataset folder. */
  dataset: string;
  /** Folder holding the named dataset's files (not needed for `fashion-mnist-bundled` or a path). */
  dataDir?: string;
  /** Download the named dataset into `dataDir` first (see `prepareDataset`). */
  download?: boolean;
  /** Image-file datasets: skip files that fail to decode instead of stopping (see `skippedImages`). */
  skipCorrupt?: boolean;
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
  /** Image files skipped so far as undecodable by the datasets this kind opened (with `skipCorrupt`). */
  skipped?: () => string[];
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
      `--data-dir: expected an existing folder, got ${JSON.stringify(source.dataDir)}${downloadHint(name, source.dataDir)}`,
    );
  // A folder that `--download` filled: its reader reads a sub-folder (e.g. cifar-10-batches-bin).
  return downloadedReaderDir(name, dir) ?? dir;
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

/** Image-file datasets opened with `skipCorrupt`, so that what they skipped can be reported. */
function tracker(skipCorrupt: boolean | undefined) {
  const opened: FileListDataset[] = [];
  return {
    options: { skipCorrupt: skipCorrupt ?? false },
    track<T extends FileListDataset>(d: T): T {
      opened.push(d);
      return d;
    },
    skipped: () => [...new Set(opened.flatMap((d) => [...d.corruptFiles]))],
  };
}

function fileListKind(
  name: string,
  root: string,
  open: (
    split: "trainval" | "train" | "test",
    options: { skipCorrupt: boolean },
  ) => FileListDataset,
  trainSplit: "trainval" | "train",
  skipCorrupt: boolean | undefined,
): DatasetKind {
  const t = tracker(skipCorrupt);
  return {
    name,
    root,
    nativeChannels: 3,
    lowRes: false,
    stats: IMAGENET_STATS,
    open: (role) => t.track(open(role === "test" ? "test" : trainSplit, t.options)),
    skipped: t.skipped,
  };
}

function imageFolderKind(root: string, skipCorrupt?: boolean): DatasetKind {
  // root/train/<class>/… and root/test/<class>/…, or a single root/<class>/… (no test split).
  const split = has(root, "train") && statSync(join(root, "train")).isDirectory();
  const t = tracker(skipCorrupt);
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
        return t.track(new ImageFolderDataset(root, t.options));
      }
      const dir = join(root, role === "test" ? "test" : "train");
      if (!existsSync(dir))
        throw new UsageError(`--dataset: ${root} has no ${role} split (expected ${dir}/<class>/…)`);
      return t.track(new ImageFolderDataset(dir, t.options));
    },
    skipped: t.skipped,
  };
}

/** Recognise a dataset folder by its files. */
function kindFromPath(path: string, skipCorrupt?: boolean): DatasetKind {
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
    return imageFolderKind(root, skipCorrupt);
  throw new UsageError(
    `--dataset: ${root} holds no dataset this CLI recognises (IDX files, CIFAR or STL-10 binaries, or class folders)`,
  );
}

/** Resolve a dataset name or path to a {@link DatasetKind}. */
export function resolveDataset(source: DataSource): DatasetKind {
  const kind = resolveKind(source);
  const hint = downloadHint(source.dataset, source.dataDir);
  if (!hint) return kind;
  // A named dataset whose files are missing: say how to get them, not only which file is absent.
  const open = kind.open;
  return {
    ...kind,
    open: (role) => {
      try {
        return open(role);
      } catch (err) {
        const message = (err as Error).message;
        if (err instanceof IOError && /not found|none of these files exists|ENOENT/.test(message))
          throw new IOError(`${message}${hint}`, { cause: err });
        throw err;
      }
    },
  };
}

/**
 * Resolve a data source for a command: with `download`, fetch the named dataset into `dataDir`
 * first (idempotent: files completed earlier are kept), then {@link resolveDataset}.
 */
export async function prepareDataset(source: DataSource, io: CliIO): Promise<DatasetKind> {
  if (!source.download) return resolveDataset(source);
  const dataDir = await downloadNamedDataset(source.dataset, source.dataDir, io);
  return resolveDataset({ ...source, dataDir });
}

/** The images `--skip-corrupt` skipped so far, as a warning line (undefined: none). */
export function skippedImages(kind: DatasetKind): string | undefined {
  const files = kind.skipped?.() ?? [];
  if (files.length === 0) return undefined;
  const shown = files.slice(0, 10).join(", ");
  const more = files.length > 10 ? ` and ${files.length - 10} more` : "";
  return `skipped ${files.length} image file(s) that failed to decode (--skip-corrupt): ${shown}${more}`;
}

function resolveKind(source: DataSource): DatasetKind {
  const name = source.dataset;
  const skip = source.skipCorrupt;
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
    case "flowers102": {
      const dir = needDir(source, name);
      return fileListKind(name, dir, (s, o) => loadFlowers102(dir, s, o), "trainval", skip);
    }
    case "pets": {
      const dir = needDir(source, name);
      const open = (s: string, o: { skipCorrupt: boolean }) =>
        loadOxfordPets(dir, s === "test" ? "test" : "trainval", o);
      return fileListKind(name, dir, open, "trainval", skip);
    }
    case "cub200": {
      const dir = needDir(source, name);
      const open = (s: string, o: { skipCorrupt: boolean }) =>
        loadCub200(dir, s === "test" ? "test" : "train", o);
      return fileListKind(name, dir, open, "train", skip);
    }
    case "aircraft": {
      const dir = needDir(source, name);
      return fileListKind(name, dir, (s, o) => loadFgvcAircraft(dir, s, o), "trainval", skip);
    }
    case "cars": {
      const dir = needDir(source, name);
      const open = (s: string, o: { skipCorrupt: boolean }) =>
        loadStanfordCars(dir, s === "test" ? "test" : "train", o);
      return fileListKind(name, dir, open, "train", skip);
    }
    case "image-folder":
      return imageFolderKind(needDir(source, name), skip);
    default:
      return kindFromPath(name, skip);
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
