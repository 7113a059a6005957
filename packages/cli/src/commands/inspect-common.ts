import { Rng } from "@sit/core";
import type * as tf from "@tensorflow/tfjs";
import type { Sample } from "@sit/data";
import { type DatasetKind, resolveDataset } from "../datasets";
import { openSplit } from "../features";
import { type LoadedModel, evaluationTransform } from "../model";
import type { DataConfig } from "../run-config";

/** Options shared by the picture commands. */
export interface PictureOptions {
  /** Checkpoint file or run folder. */
  checkpoint: string;
  /** PNG path. */
  out: string;
  /** Split the images come from. */
  split: "train" | "test";
  /** Number of images (rows), evenly spaced over the split. */
  count: number;
  /** Network copy to use. */
  weights: "student" | "teacher";
  backend?: string;
  /** Dataset overrides (default: the run's). */
  data?: Partial<DataConfig>;
}

/** `count` evaluation-transformed images of a split, evenly spaced, NHWC normalised (caller disposes). */
export async function pictureBatch(
  model: LoadedModel,
  split: "train" | "test",
  count: number,
  size: number,
): Promise<{
  images: tf.Tensor4D;
  kind: DatasetKind;
  labels: number[];
  /** Class names of the split, index = label, when the dataset has them. */
  classNames?: readonly string[];
}> {
  const kind = resolveDataset(model.run.data);
  const ds = openSplit(kind, split, count);
  const samples: Sample[] = await Promise.all(
    Array.from({ length: ds.length }, (_, i) => Promise.resolve(ds.get(i))),
  );
  const [images] = evaluationTransform(model.run, kind, size).apply(samples, Rng.seed(0));
  return {
    images,
    kind,
    labels: samples.map((s) => s.label ?? -1),
    ...(ds.classNames ? { classNames: ds.classNames } : {}),
  };
}
