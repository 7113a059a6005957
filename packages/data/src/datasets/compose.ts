import { ConfigError } from "@sit/core";
import type { Dataset, Sample } from "../types";

function checkIndex(index: number, length: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= length)
    throw new ConfigError(`index: expected an integer in [0, ${length}), got ${index}`);
}

/**
 * Several datasets end to end (e.g. STL-10 train + unlabeled for pretraining). Labels are kept
 * when every part is labelled; otherwise `labels` is absent and samples keep whatever label
 * their own part gives. Class names come from the first part that has them.
 */
export class ConcatDataset implements Dataset {
  readonly length: number;
  readonly labels?: Int32Array;
  readonly classNames?: readonly string[];
  readonly numClasses?: number;
  private readonly offsets: number[] = [];

  constructor(readonly parts: readonly Dataset[]) {
    if (parts.length === 0) throw new ConfigError("parts: expected at least one dataset, got []");
    let total = 0;
    for (const p of parts) {
      this.offsets.push(total);
      total += p.length;
    }
    this.length = total;
    if (parts.every((p) => p.labels)) {
      this.labels = new Int32Array(total);
      parts.forEach((p, i) => {
        this.labels!.set(p.labels!, this.offsets[i]);
      });
    }
    const named = parts.find((p) => p.classNames);
    this.classNames = named?.classNames;
    const counts = parts.map((p) => p.numClasses ?? 0);
    this.numClasses = Math.max(...counts) || undefined;
  }

  get(index: number): Sample | Promise<Sample> {
    checkIndex(index, this.length);
    let p = this.parts.length - 1;
    while (this.offsets[p] > index) p--;
    return this.parts[p].get(index - this.offsets[p]);
  }
}

/** The samples of `source` at `indices`, in that order (few-shot subsets, validation splits). */
export class SubsetDataset implements Dataset {
  readonly length: number;
  readonly labels?: Int32Array;
  readonly classNames?: readonly string[];
  readonly numClasses?: number;
  readonly indices: Int32Array;

  constructor(
    readonly source: Dataset,
    indices: ArrayLike<number>,
  ) {
    this.indices = Int32Array.from(indices);
    this.indices.forEach((i, k) => {
      if (!(i >= 0 && i < source.length))
        throw new ConfigError(
          `indices[${k}]: expected an index in [0, ${source.length}), got ${i}`,
        );
    });
    this.length = this.indices.length;
    if (source.labels) this.labels = this.indices.map((i) => source.labels![i]);
    this.classNames = source.classNames;
    this.numClasses = source.numClasses;
  }

  get(index: number): Sample | Promise<Sample> {
    checkIndex(index, this.length);
    return this.source.get(this.indices[index]);
  }
}
