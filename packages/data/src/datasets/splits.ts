import { existsSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, IOError } from "@sit/core";
import { FileListDataset, type ImageFilesOptions } from "./image-files";
import { matNumbers, matScalar, readMat } from "./matlab";
import { firstExisting, readLines } from "./records";

function checkSplit<T extends string>(split: T, allowed: readonly T[]): T {
  if (!allowed.includes(split))
    throw new ConfigError(
      `split: expected one of ${allowed.map((s) => JSON.stringify(s)).join(", ")}, got ${JSON.stringify(split)}`,
    );
  return split;
}

/** `root` itself when it holds `marker`, else `root/<sub>` when that does (archives unpack into a sub-folder). */
function locate(root: string, sub: string, marker: string): string {
  if (existsSync(join(root, marker))) return root;
  if (existsSync(join(root, sub, marker))) return join(root, sub);
  throw new IOError(
    `${root}: expected ${marker} here or in ${join(root, sub)} (dataset not extracted?)`,
  );
}

/**
 * Oxford Flowers-102 as distributed: `jpg/image_00001.jpg …` (102flowers.tgz), `imagelabels.mat`
 * (`labels`, 1…102 per image) and `setid.mat` (`trnid`, `valid`, `tstid`, 1-based image ids).
 * "trainval" joins train and val. Class names are not part of the distribution.
 */
export function loadFlowers102(
  root: string,
  split: "train" | "val" | "test" | "trainval",
  options: ImageFilesOptions = {},
): FileListDataset {
  checkSplit(split, ["train", "val", "test", "trainval"]);
  const labelsFile = join(root, "imagelabels.mat");
  const setFile = join(root, "setid.mat");
  const allLabels = matNumbers(readMat(labelsFile), "labels", labelsFile);
  const sets = readMat(setFile);
  const keys = { train: ["trnid"], val: ["valid"], test: ["tstid"], trainval: ["trnid", "valid"] }[
    split
  ];
  const ids = keys.flatMap((k) => Array.from(matNumbers(sets, k, setFile)));
  const files: string[] = [];
  const labels = new Int32Array(ids.length);
  ids.forEach((id, i) => {
    if (!(id >= 1 && id <= allLabels.length))
      throw new IOError(
        `${setFile}: image id ${id} is outside 1…${allLabels.length} of ${labelsFile}`,
      );
    files.push(join(root, "jpg", `image_${String(id).padStart(5, "0")}.jpg`));
    labels[i] = allLabels[id - 1] - 1;
  });
  const numClasses = Math.max(102, ...Array.from(new Set(allLabels)));
  return new FileListDataset(
    files,
    labels,
    Array.from({ length: numClasses }, (_, i) => String(i + 1)),
    options,
  );
}

/**
 * Oxford-IIIT Pets: `images/<name>.jpg` and `annotations/{trainval,test}.txt`, lines
 * `<name> <class 1…37> <species> <breed id>`. Class names are the breed part of the image names.
 */
export function loadOxfordPets(
  root: string,
  split: "trainval" | "test",
  options: ImageFilesOptions = {},
): FileListDataset {
  checkSplit(split, ["trainval", "test"]);
  const listFile = join(root, "annotations", `${split}.txt`);
  const files: string[] = [];
  const labels: number[] = [];
  const names: string[] = [];
  for (const line of readLines(listFile, `${split} split list`)) {
    if (line.startsWith("#")) continue;
    const [name, cls] = line.split(/\s+/);
    const label = Number(cls) - 1;
    if (!name || !Number.isInteger(label) || label < 0)
      throw new IOError(`${listFile}: malformed line ${JSON.stringify(line)}`);
    files.push(join(root, "images", `${name}.jpg`));
    labels.push(label);
    names[label] ??= name.replace(/_\d+$/, "");
  }
  const classNames = Array.from(
    { length: Math.max(37, names.length) },
    (_, i) => names[i] ?? `class ${i + 1}`,
  );
  return new FileListDataset(files, Int32Array.from(labels), classNames, options);
}

function idMap(file: string, what: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of readLines(file, what)) {
    const space = line.indexOf(" ");
    if (space < 0) throw new IOError(`${file}: malformed line ${JSON.stringify(line)}`);
    m.set(line.slice(0, space), line.slice(space + 1).trim());
  }
  return m;
}

/**
 * CUB-200-2011: `images.txt` (`<id> <path>`), `image_class_labels.txt` (`<id> <class 1…200>`),
 * `train_test_split.txt` (`<id> <1 = train>`), `classes.txt`, images under `images/`. `root` is
 * the `CUB_200_2011` folder or its parent.
 */
export function loadCub200(
  root: string,
  split: "train" | "test",
  options: ImageFilesOptions = {},
): FileListDataset {
  checkSplit(split, ["train", "test"]);
  const dir = locate(root, "CUB_200_2011", "images.txt");
  const paths = idMap(join(dir, "images.txt"), "image list");
  const classes = idMap(join(dir, "image_class_labels.txt"), "class label list");
  const isTrain = idMap(join(dir, "train_test_split.txt"), "train/test split list");
  const classNames = [...idMap(join(dir, "classes.txt"), "class list").entries()]
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([, name]) => name);
  const files: string[] = [];
  const labels: number[] = [];
  for (const [id, path] of paths) {
    const flag = isTrain.get(id);
    const cls = Number(classes.get(id));
    if (flag === undefined || !Number.isInteger(cls))
      throw new IOError(`${dir}: image ${id} (${path}) has no split flag or class label`);
    if ((flag === "1") !== (split === "train")) continue;
    files.push(join(dir, "images", path));
    labels.push(cls - 1);
  }
  return new FileListDataset(files, Int32Array.from(labels), classNames, options);
}

/**
 * FGVC-Aircraft 2013b: `data/images_<level>_<split>.txt` (`<image id> <class name>`), the class
 * list `data/{variants,families,manufacturers}.txt`, images `data/images/<id>.jpg`. `root` is the
 * `fgvc-aircraft-2013b` folder or its parent. Level default "variant" (100 classes).
 */
export function loadFgvcAircraft(
  root: string,
  split: "train" | "val" | "trainval" | "test",
  options: ImageFilesOptions & { level?: "variant" | "family" | "manufacturer" } = {},
): FileListDataset {
  checkSplit(split, ["train", "val", "trainval", "test"]);
  const level = checkSplit(options.level ?? "variant", ["variant", "family", "manufacturer"]);
  const dir = join(locate(root, "fgvc-aircraft-2013b", join("data", "images")), "data");
  const listName = {
    variant: "variants.txt",
    family: "families.txt",
    manufacturer: "manufacturers.txt",
  }[level];
  const classNames = readLines(join(dir, listName), "class list");
  const index = new Map(classNames.map((n, i) => [n, i]));
  const splitFile = join(dir, `images_${level}_${split}.txt`);
  const files: string[] = [];
  const labels: number[] = [];
  for (const line of readLines(splitFile, `${split} split list`)) {
    const space = line.indexOf(" ");
    const id = line.slice(0, space);
    const label = index.get(line.slice(space + 1).trim());
    if (space < 0 || label === undefined)
      throw new IOError(`${splitFile}: line ${JSON.stringify(line)} names no class of ${listName}`);
    files.push(join(dir, "images", `${id}.jpg`));
    labels.push(label);
  }
  return new FileListDataset(files, Int32Array.from(labels), classNames, options);
}

/**
 * Stanford Cars with the devkit: `devkit/cars_train_annos.mat` and `cars_test_annos_withlabels.mat`
 * (MATLAB struct arrays `annotations` with `fname` and `class` 1…196; read here with the
 * built-in MAT v5 reader), `devkit/cars_meta.mat` (`class_names`), images in `cars_train/` and
 * `cars_test/`. The test annotations file may sit in `root` or in `devkit/`.
 */
export function loadStanfordCars(
  root: string,
  split: "train" | "test",
  options: ImageFilesOptions = {},
): FileListDataset {
  checkSplit(split, ["train", "test"]);
  const devkit = join(root, "devkit");
  const annoFile =
    split === "train"
      ? join(devkit, "cars_train_annos.mat")
      : firstExisting("Stanford Cars test annotations with labels", [
          join(root, "cars_test_annos_withlabels.mat"),
          join(devkit, "cars_test_annos_withlabels.mat"),
        ]);
  const annotations = readMat(annoFile).annotations;
  if (annotations?.kind !== "struct")
    throw new IOError(`${annoFile}: expected a struct array "annotations"`);
  const files: string[] = [];
  const labels: number[] = [];
  annotations.elements.forEach((a, i) => {
    const fname = matScalar(a.fname);
    const cls = matScalar(a.class);
    if (typeof fname !== "string" || typeof cls !== "number")
      throw new IOError(`${annoFile}: annotation ${i} lacks a "fname" string or a "class" number`);
    files.push(join(root, `cars_${split}`, fname));
    labels.push(cls - 1);
  });
  let classNames: string[] | undefined;
  const metaFile = join(devkit, "cars_meta.mat");
  if (existsSync(metaFile)) {
    const names = readMat(metaFile).class_names;
    if (names?.kind === "cell") classNames = names.cells.map((c) => String(matScalar(c) ?? ""));
  }
  return new FileListDataset(files, Int32Array.from(labels), classNames, options);
}
