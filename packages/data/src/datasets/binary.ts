import { existsSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, IOError } from "@sit/core";
import type { Dataset, Sample } from "../types";
import { RecordFiles, readLines } from "./records";

function checkIndex(index: number, length: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= length)
    throw new ConfigError(`index: expected an integer in [0, ${length}), got ${index}`);
}

/** Planar CHW bytes (CIFAR) → interleaved HWC. */
function planarToHwc(src: Uint8Array, height: number, width: number): Uint8Array {
  const plane = height * width;
  const out = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    out[3 * p] = src[p];
    out[3 * p + 1] = src[plane + p];
    out[3 * p + 2] = src[2 * plane + p];
  }
  return out;
}

/** Options of {@link CifarDataset}. */
export interface CifarOptions {
  /** "train" (5 batches for CIFAR-10, train.bin for CIFAR-100) or "test". */
  split: "train" | "test";
  /** CIFAR-100 only: the 100 fine labels (default) or the 20 coarse superclasses. */
  labelType?: "fine" | "coarse";
  /** Keep the files in memory (default) or read records on demand. */
  inMemory?: boolean;
}

/**
 * CIFAR-10 / CIFAR-100 in the binary format (`cifar-10-batches-bin/data_batch_{1..5}.bin`,
 * `test_batch.bin`; `cifar-100-binary/train.bin`, `test.bin`): records of label byte(s) + 3072
 * planar RGB bytes (32×32). Class names from `batches.meta.txt` / `{fine,coarse}_label_names.txt`
 * when present.
 */
export class CifarDataset implements Dataset {
  readonly length: number;
  readonly labels: Int32Array;
  readonly classNames?: readonly string[];
  readonly numClasses: number;
  private readonly records: RecordFiles;
  private readonly labelOffset: number;
  private readonly headerSize: number;

  constructor(
    readonly dir: string,
    readonly variant: "cifar-10" | "cifar-100",
    options: CifarOptions,
  ) {
    const { split } = options;
    if (split !== "train" && split !== "test")
      throw new ConfigError(`split: expected "train" or "test", got ${JSON.stringify(split)}`);
    const labelType = options.labelType ?? "fine";
    if (labelType !== "fine" && labelType !== "coarse")
      throw new ConfigError(
        `labelType: expected "fine" or "coarse", got ${JSON.stringify(labelType)}`,
      );
    let files: string[];
    let namesFile: string;
    if (variant === "cifar-10") {
      files =
        split === "train"
          ? [1, 2, 3, 4, 5].map((i) => join(dir, `data_batch_${i}.bin`))
          : [join(dir, "test_batch.bin")];
      namesFile = join(dir, "batches.meta.txt");
      this.headerSize = 1;
      this.labelOffset = 0;
      this.numClasses = 10;
    } else {
      files = [join(dir, `${split}.bin`)];
      namesFile = join(dir, `${labelType}_label_names.txt`);
      this.headerSize = 2;
      this.labelOffset = labelType === "coarse" ? 0 : 1;
      this.numClasses = labelType === "coarse" ? 20 : 100;
    }
    this.records = new RecordFiles(files, this.headerSize + 3072, { inMemory: options.inMemory });
    this.length = this.records.length;
    this.labels = new Int32Array(this.length);
    for (let i = 0; i < this.length; i++) {
      const label = this.records.read(i)[this.labelOffset];
      if (label >= this.numClasses)
        throw new IOError(
          `${variant} record ${i}: label ${label} is outside [0, ${this.numClasses}) — not a ${variant} binary file?`,
        );
      this.labels[i] = label;
    }
    if (existsSync(namesFile)) {
      const names = readLines(namesFile);
      if (names.length === this.numClasses) this.classNames = names;
    }
  }

  get(index: number): Sample {
    checkIndex(index, this.length);
    const record = this.records.read(index);
    return {
      image: planarToHwc(record.subarray(this.headerSize), 32, 32),
      height: 32,
      width: 32,
      channels: 3,
      label: this.labels[index],
    };
  }

  close(): void {
    this.records.close();
  }
}

/** CIFAR-10 from `cifar-10-batches-bin`. */
export function loadCifar10(dir: string, split: "train" | "test"): CifarDataset {
  return new CifarDataset(dir, "cifar-10", { split });
}

/** CIFAR-100 from `cifar-100-binary` with fine (default) or coarse labels. */
export function loadCifar100(
  dir: string,
  split: "train" | "test",
  labelType: "fine" | "coarse" = "fine",
): CifarDataset {
  return new CifarDataset(dir, "cifar-100", { split, labelType });
}

const STL_SIDE = 96;
const STL_BYTES = STL_SIDE * STL_SIDE * 3;

/**
 * STL-10 binary (`stl10_binary/{train,test,unlabeled}_X.bin`, `*_y.bin`, `class_names.txt`):
 * 96×96×3 images stored column-major per channel (MATLAB order, as distributed), labels 1…10 in
 * `*_y.bin` (returned as 0…9). The 100k-image unlabeled split has no labels and is read from
 * disk on demand (2.6 GB); the labelled splits are held in memory.
 */
export class Stl10Dataset implements Dataset {
  readonly length: number;
  readonly labels?: Int32Array;
  readonly classNames?: readonly string[];
  readonly numClasses?: number;
  private readonly records: RecordFiles;

  constructor(
    readonly dir: string,
    readonly split: "train" | "test" | "unlabeled",
    options: { inMemory?: boolean } = {},
  ) {
    if (split !== "train" && split !== "test" && split !== "unlabeled")
      throw new ConfigError(
        `split: expected "train", "test" or "unlabeled", got ${JSON.stringify(split)}`,
      );
    this.records = new RecordFiles([join(dir, `${split}_X.bin`)], STL_BYTES, {
      inMemory: options.inMemory ?? split !== "unlabeled",
    });
    this.length = this.records.length;
    if (split !== "unlabeled") {
      const labelFile = new RecordFiles([join(dir, `${split}_y.bin`)], 1);
      if (labelFile.length !== this.length)
        throw new IOError(
          `${labelFile.paths[0]}: expected ${this.length} labels to match ${split}_X.bin, got ${labelFile.length}`,
        );
      this.labels = new Int32Array(this.length);
      for (let i = 0; i < this.length; i++) {
        const l = labelFile.read(i)[0];
        if (l < 1 || l > 10)
          throw new IOError(`${labelFile.paths[0]}: label ${l} at ${i} is outside 1…10`);
        this.labels[i] = l - 1;
      }
      this.numClasses = 10;
      const namesFile = join(dir, "class_names.txt");
      if (existsSync(namesFile)) {
        const names = readLines(namesFile);
        if (names.length === 10) this.classNames = names;
      }
    }
  }

  get(index: number): Sample {
    checkIndex(index, this.length);
    const src = this.records.read(index);
    const out = new Uint8Array(STL_BYTES);
    // Column-major per channel: byte c·96² + x·96 + y holds pixel (row y, column x).
    for (let c = 0; c < 3; c++) {
      const plane = c * STL_SIDE * STL_SIDE;
      for (let x = 0; x < STL_SIDE; x++) {
        const col = plane + x * STL_SIDE;
        for (let y = 0; y < STL_SIDE; y++) out[(y * STL_SIDE + x) * 3 + c] = src[col + y];
      }
    }
    const sample: Sample = { image: out, height: STL_SIDE, width: STL_SIDE, channels: 3 };
    if (this.labels) sample.label = this.labels[index];
    return sample;
  }

  close(): void {
    this.records.close();
  }
}
