import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber } from "@sit/core";

/** Per-channel mean and standard deviation of a dataset's pixels in [0, 1]. */
export interface NormalizeStats {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** ImageNet statistics (torchvision's); SiT normalises every dataset with these (spec §2). */
export const IMAGENET_STATS: NormalizeStats = {
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

/**
 * Per-dataset statistics as commonly published (per-pixel mean and std over the training split).
 * Fashion-MNIST's values are checked against the real training set by this package's tests;
 * the others are the widely quoted values and are not verified here.
 */
export const DATASET_STATS: Readonly<Record<string, NormalizeStats>> = {
  imagenet: IMAGENET_STATS,
  "cifar-10": { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
  "cifar-100": { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] },
  mnist: { mean: [0.1307], std: [0.3081] },
  "fashion-mnist": { mean: [0.286], std: [0.353] },
  "stl-10": { mean: [0.4467, 0.4398, 0.4066], std: [0.2603, 0.2566, 0.2713] },
};

/**
 * `(x − mean) / std` per channel (torchvision `normalize`). Mean and std have one entry (applied
 * to every channel) or one per channel; 3-entry stats on a 1-channel batch are refused as ambiguous.
 */
export function normalize(x: tf.Tensor4D, stats: NormalizeStats): tf.Tensor4D {
  if (x.rank !== 4) throw new ShapeError(`x: expected NHWC images, got [${x.shape}]`);
  const channels = x.shape[3];
  const { mean, std } = stats;
  for (const [name, v] of [
    ["mean", mean],
    ["std", std],
  ] as const) {
    if (!Array.isArray(v) || (v.length !== 1 && v.length !== channels))
      throw new ShapeError(
        `stats.${name}: expected 1 or ${channels} entries, got ${JSON.stringify(v)}`,
      );
  }
  std.forEach((s, i) => {
    checkNumber(`stats.std[${i}]`, s, { min: 0, minExclusive: true });
  });
  mean.forEach((m, i) => {
    checkNumber(`stats.mean[${i}]`, m);
  });
  return tf.tidy(() =>
    x.sub(tf.tensor1d(Float32Array.from(mean))).div(tf.tensor1d(Float32Array.from(std))),
  ) as tf.Tensor4D;
}
