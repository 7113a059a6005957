import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber, describeValue } from "@sit/core";
import { type FeatureSet, checkLabeled, inferNumClasses, l2NormalizeRows } from "./feature-set";

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
 * selection runs in JS with a bounded heap per row.
 */
export function knnEval(train: FeatureSet, test: FeatureSet, options: KnnOptions = {}): KnnResult[] {
  const ks = options.ks ?? [10, 20, 100, 200];
  if (!Array.isArray(ks) || ks.length === 0)
    throw new ConfigError(`ks: expected a non-empty array of positive integers, got ${describeValue(ks)}`);
  const temperature = checkNumber("temperature", options.temperature ?? 0.07, {
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

  const trainNorm = l2NormalizeRows(train.features, dim);
  const testNorm = l2NormalizeRows(test.features, dim);
  // [dim, nTrain] so that every chunk is a plain matMul (transposed matMuls are slow on wasm).
  const trainT = tf.tidy(() => tf.tensor2d(trainNorm, [nTrain, dim]).transpose());

  const predictions = ks.map(() => new Int32Array(nTest));
  const hits1 = ks.map(() => 0);
  const hits5 = ks.map(() => 0);
  const heapVal = new Float32Array(kMax);
  const heapIdx = new Int32Array(kMax);
  const order = new Int32Array(kMax);
  const votes = new Float64Array(numClasses);
  const byK = ks.map((k, i) => [k, i]).sort((a, b) => a[0] - b[0]);
  try {
    for (let start = 0; start < nTest; start += chunk) {
      const rows = Math.min(chunk, nTest - start);
      const sims = tf.tidy(() =>
        tf.matMul(tf.tensor2d(testNorm.subarray(start * dim, (start + rows) * dim), [rows, dim]), trainT),
      );
      const s = sims.dataSync() as Float32Array;
      sims.dispose();
      for (let r = 0; r < rows; r++) {
        const count = topK(s, r * nTrain, nTrain, kMax, heapVal, heapIdx, order);
        const y = test.labels[start + r];
        // Vote incrementally: the totals for k are those for the previous k plus the new neighbours.
        votes.fill(0);
        let done = 0;
        for (const [k, i] of byK) {
          for (; done < Math.min(k, count); done++) {
            const j = order[done];
            votes[train.labels[heapIdx[j]]] += Math.exp(heapVal[j] / temperature);
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

/**
 * Select the k largest of `s[off .. off+n)` with a min-heap ordered by (value, -index), so an
 * equal value never displaces an earlier row. Fills `order` with heap slots sorted from the most
 * to the least similar, and returns how many were selected (min(k, n)).
 */
function topK(
  s: Float32Array,
  off: number,
  n: number,
  k: number,
  val: Float32Array,
  idx: Int32Array,
  order: Int32Array,
): number {
  // "a is worse than b": lower value, or equal value and later row.
  const worse = (a: number, b: number): boolean =>
    val[a] < val[b] || (val[a] === val[b] && idx[a] > idx[b]);
  const swap = (a: number, b: number): void => {
    const v = val[a];
    val[a] = val[b];
    val[b] = v;
    const t = idx[a];
    idx[a] = idx[b];
    idx[b] = t;
  };
  const siftDown = (size: number, i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) return;
      let m = l;
      if (l + 1 < size && worse(l + 1, l)) m = l + 1;
      if (!worse(m, i)) return;
      swap(m, i);
      i = m;
    }
  };
  let size = 0;
  for (let j = 0; j < n; j++) {
    const v = s[off + j];
    if (size < k) {
      let i = size++;
      val[i] = v;
      idx[i] = j;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(i, p)) break;
        swap(i, p);
        i = p;
      }
    } else if (v > val[0]) {
      // Strictly greater only: on equal values the earlier row (already in the heap) stays.
      val[0] = v;
      idx[0] = j;
      siftDown(size, 0);
    }
  }
  for (let i = 0; i < size; i++) order[i] = i;
  const o = Array.from(order.subarray(0, size)).sort((a, b) =>
    val[a] !== val[b] ? val[b] - val[a] : idx[a] - idx[b],
  );
  for (let i = 0; i < size; i++) order[i] = o[i];
  return size;
}
