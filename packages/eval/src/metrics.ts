import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber } from "@sit/core";

/** Class scores: a row-major `[n, numClasses]` array, or a rank-2 tensor (read synchronously). */
export type Scores = Float32Array | Float64Array | tf.Tensor;

function scoresArray(
  scores: Scores,
  numClasses: number | undefined,
): { s: Float32Array | Float64Array; c: number } {
  if (scores instanceof tf.Tensor) {
    if (scores.rank !== 2)
      throw new ShapeError(`scores: expected a rank-2 tensor [n, classes], got [${scores.shape}]`);
    return { s: scores.dataSync() as Float32Array, c: scores.shape[1] as number };
  }
  if (numClasses === undefined)
    throw new ConfigError(
      "numClasses: expected the number of columns of a flat scores array, got undefined",
    );
  checkNumber("numClasses", numClasses, { integer: true, min: 1 });
  if (scores.length % numClasses !== 0)
    throw new ShapeError(
      `scores: expected a length divisible by numClasses = ${numClasses}, got ${scores.length}`,
    );
  return { s: scores, c: numClasses };
}

function checkLabels(labels: ArrayLike<number>, n: number, numClasses: number): void {
  if (labels.length !== n)
    throw new ShapeError(`labels: expected ${n} labels (one per row), got ${labels.length}`);
  for (let i = 0; i < n; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= numClasses)
      throw new ConfigError(
        `labels[${i}]: expected a class in [0, ${numClasses}), got ${y}${y === -1 ? " (unlabeled sample)" : ""}`,
      );
  }
}

/**
 * Rank of class `y` among one row's scores: the number of classes scored strictly higher, plus
 * those scored equal with a lower index (ties go to the lower class index, everywhere in @sit/eval).
 */
export function classRank(row: ArrayLike<number>, offset: number, c: number, y: number): number {
  const sy = row[offset + y];
  let rank = 0;
  for (let j = 0; j < c; j++) {
    const sj = row[offset + j];
    if (sj > sy || (sj === sy && j < y)) rank++;
  }
  return rank;
}

/**
 * Top-k accuracy in [0, 1]: the fraction of rows whose true class ranks among the k highest
 * scores (ties broken towards the lower class index, so the result is deterministic).
 */
export function topKAccuracy(
  scores: Scores,
  labels: ArrayLike<number>,
  k: number,
  numClasses?: number,
): number {
  const { s, c } = scoresArray(scores, numClasses);
  checkNumber("k", k, { integer: true, min: 1 });
  const n = s.length / c;
  checkLabels(labels, n, c);
  if (n === 0) throw new ConfigError("scores: expected at least one row, got 0");
  let hits = 0;
  for (let i = 0; i < n; i++) if (classRank(s, i * c, c, labels[i]) < k) hits++;
  return hits / n;
}

/** Arg-max class of each row (the lower index wins a tie). */
export function predictClasses(scores: Scores, numClasses?: number): Int32Array {
  const { s, c } = scoresArray(scores, numClasses);
  const n = s.length / c;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bv = s[i * c];
    for (let j = 1; j < c; j++) {
      if (s[i * c + j] > bv) {
        bv = s[i * c + j];
        best = j;
      }
    }
    out[i] = best;
  }
  return out;
}

/** Fraction of `predictions` equal to `labels`. */
export function accuracy(labels: ArrayLike<number>, predictions: ArrayLike<number>): number {
  if (labels.length !== predictions.length)
    throw new ShapeError(
      `predictions: expected ${labels.length} predictions (one per label), got ${predictions.length}`,
    );
  if (labels.length === 0) throw new ConfigError("labels: expected at least one label, got 0");
  let hits = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === predictions[i]) hits++;
  return hits / labels.length;
}

/**
 * A confusion matrix: `counts[t * numClasses + p]` is the number of samples of true class t
 * predicted as p (rows = truth, columns = prediction, as scikit-learn).
 */
export interface ConfusionMatrix {
  numClasses: number;
  counts: Int32Array;
}

/** Count (truth, prediction) pairs into a {@link ConfusionMatrix}. */
export function confusionMatrix(
  labels: ArrayLike<number>,
  predictions: ArrayLike<number>,
  numClasses: number,
): ConfusionMatrix {
  checkNumber("numClasses", numClasses, { integer: true, min: 1 });
  checkLabels(labels, labels.length, numClasses);
  if (predictions.length !== labels.length)
    throw new ShapeError(
      `predictions: expected ${labels.length} predictions (one per label), got ${predictions.length}`,
    );
  const counts = new Int32Array(numClasses * numClasses);
  for (let i = 0; i < labels.length; i++) {
    const p = predictions[i];
    if (!Number.isInteger(p) || p < 0 || p >= numClasses)
      throw new ConfigError(`predictions[${i}]: expected a class in [0, ${numClasses}), got ${p}`);
    counts[labels[i] * numClasses + p]++;
  }
  return { numClasses, counts };
}

/**
 * Accuracy of each class (recall: correct / samples of that class); NaN for a class with no
 * samples, so that it is not mistaken for 0%.
 */
export function perClassAccuracy(cm: ConfusionMatrix): Float64Array {
  const c = cm.numClasses;
  const out = new Float64Array(c);
  for (let t = 0; t < c; t++) {
    let total = 0;
    for (let p = 0; p < c; p++) total += cm.counts[t * c + p];
    out[t] = total === 0 ? Number.NaN : cm.counts[t * c + t] / total;
  }
  return out;
}

/** Mean of the per-class accuracies over the classes that have samples ("balanced accuracy"). */
export function meanPerClassAccuracy(cm: ConfusionMatrix): number {
  const pc = perClassAccuracy(cm);
  let s = 0;
  let n = 0;
  for (const a of pc) {
    if (!Number.isNaN(a)) {
      s += a;
      n++;
    }
  }
  return n === 0 ? Number.NaN : s / n;
}
