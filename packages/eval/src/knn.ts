import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber, describeValue } from "@sit/core";
import { type FeatureSet, checkLabeled, inferNumClasses, l2NormalizeRows } from "./feature-set";
import { TopKSelector } from "./top-k";

/** Options of {@link knnEval}. */
export interface KnnOptions {
  /** Neighbour counts evaluated in one pass (neighbours are sorted once, at the largest k). Default [10, 20, 100, 200] (DINO's). */
  ks?: number[];
  /** Temperature T of the vote weight exp(sim / T). Default 0.07 (DINO). */
  temperature?: number;
  /** Number of classes; default: one more than the largest label of either set. */
  numClasses?: number;
  /** Test rows per similarity product (bounds memory: chunk × nTrain floats). Default 256. */
  chunkSize?: number;
}

/** Result for one k. Accuracies are fractions in [0, 1]. */
export interface KnnResult {
  k: number;
  top1: number;
  top5: number;
  /** Predicted class of every test row (highest vote; ties to the lower class index). */
  predictions: Int32Array;
}

/**
 * Weighted k-nearest-neighbour classification of frozen features, the protocol of DINO (Caron et
 * al. 2021), which we adopt as our choice since SiT publishes no k-NN protocol: features are
 * L2-normalised, similarity is the cosine, the k most similar training rows vote for their class
 * with weight exp(sim / T), and the class with the largest total wins. Top-5 counts a hit when
 * the true class has a positive vote and ranks among the five largest totals.
 *
 * Deterministic tie rules: among training rows with equal similarity the lower index is the nearer
 * neighbour; among classes with equal totals the lower class index ranks first.
 *
 * The similarity products run on the active tfjs backend in chunks of test rows; the top-k
 * selection runs in JS (see {@link TopKSelector}).
 */
/** {@link knnEval}'s defaults: DINO's k-NN protocol. */
export const KNN_DEFAULTS = { ks: [10, 20, 100, 200], temperature: 0.07 } as const;

export function knnEval(
  train: FeatureSet,
  test: FeatureSet,
  options: KnnOptions = {},
): KnnResult[] {
  const ks = options.ks ?? [...KNN_DEFAULTS.ks];
  if (!Array.isArray(ks) || ks.length === 0)
    throw new ConfigError(
      `ks: expected a non-empty array of positive integers, got ${describeValue(ks)}`,
    );
  const temperature = checkNumber("temperature", options.temperature ?? KNN_DEFAULTS.temperature, {
    min: 0,
    minExclusive: true,
  });
  const chunk = checkNumber("chunkSize", options.chunkSize ?? 256, { integer: true, min: 1 });
  checkLabeled("train", train, options.numClasses);
  checkLabeled("test", test, options.numClasses);
  if (train.dim !== test.dim)
    throw new ShapeError(
      `test.dim: expected the training features' dimension ${train.dim}, got ${test.dim}`,
    );
  const numClasses =
    options.numClasses === undefined
      ? inferNumClasses(train, test)
      : checkNumber("numClasses", options.numClasses, { integer: true, min: 1 });
  const nTrain = train.labels.length;
  for (const k of ks) {
    checkNumber("ks[]", k, { integer: true, min: 1 });
    if (k > nTrain)
      throw new ConfigError(
        `ks: k = ${k} exceeds the ${nTrain} training rows (expected every k ≤ ${nTrain})`,
      );
  }
  const kMax = Math.max(...ks);
  const dim = train.dim;
  const nTest = test.labels.length;

  const testNorm = l2NormalizeRows(test.features, dim);
  // [dim, nTrain] so that every chunk is a plain matMul (transposed matMuls are slow on wasm);
  // normalised and transposed in one JS pass.
  const trainT = tf.tensor2d(normalizeTransposed(train.features, nTrain, dim), [dim, nTrain]);

  const predictions = ks.map(() => new Int32Array(nTest));
  const hits1 = ks.map(() => 0);
  const hits5 = ks.map(() => 0);
  const selector = new TopKSelector(kMax);
  const nnSim = new Float32Array(kMax);
  const nnIdx = new Int32Array(kMax);
  const votes = new Float64Array(numClasses);
  const byK = ks.map((k, i) => [k, i]).sort((a, b) => a[0] - b[0]);
  try {
    for (let start = 0; start < nTest; start += chunk) {
      const rows = Math.min(chunk, nTest - start);
      const sims = tf.tidy(() =>
        tf.matMul(
          tf.tensor2d(testNorm.subarray(start * dim, (start + rows) * dim), [rows, dim]),
          trainT,
        ),
      );
      const s = sims.dataSync() as Float32Array;
      sims.dispose();
      for (let r = 0; r < rows; r++) {
        const count = selector.select(s, r * nTrain, nTrain, nnSim, nnIdx);
        const y = test.labels[start + r];
        // Vote incrementally: the totals for k are those for the previous k plus the new neighbours.
        votes.fill(0);
        let done = 0;
        for (const [k, i] of byK) {
          for (; done < Math.min(k, count); done++) {
            votes[train.labels[nnIdx[done]]] += Math.exp(nnSim[done] / temperature);
          }
          const { pred, rankOfTrue } = rankVotes(votes, y);
          predictions[i][start + r] = pred;
          if (pred === y) hits1[i]++;
          if (votes[y] > 0 && rankOfTrue < 5) hits5[i]++;
        }
      }
    }
  } finally {
    trainT.dispose();
  }
  return ks.map((k, i) => ({
    k,
    top1: hits1[i] / nTest,
    top5: hits5[i] / nTest,
    predictions: predictions[i],
  }));
}

function rankVotes(votes: Float64Array, y: number): { pred: number; rankOfTrue: number } {
  let pred = 0;
  let rank = 0;
  const vy = votes[y];
  for (let c = 0; c < votes.length; c++) {
    if (votes[c] > votes[pred]) pred = c;
    if (votes[c] > vy || (votes[c] === vy && c < y)) rank++;
  }
  return { pred, rankOfTrue: rank };
}

/** Row-L2-normalise a row-major [n, dim] matrix and return it transposed, [dim, n]. */
function normalizeTransposed(x: Float32Array, n: number, dim: number): Float32Array {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    let sq = 0;
    for (let j = 0; j < dim; j++) sq += x[o + j] * x[o + j];
    const inv = sq > 0 ? 1 / Math.sqrt(sq) : 0;
    for (let j = 0; j < dim; j++) out[j * n + i] = x[o + j] * inv;
  }
  return out;
}
