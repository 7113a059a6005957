import { ConfigError, Rng, checkNumber, describeValue } from "@sit/core";
import type { Dataset } from "@sit/data";
import { type FeatureSet, checkLabeled, l2NormalizeRows } from "./feature-set";

/** Classifiers fitted on each episode's support set. */
export type FewShotClassifier = "prototype" | "logistic";

/** Options of {@link fewShot}. */
export interface FewShotOptions {
  /** N: classes per episode. Default 5. */
  ways?: number;
  /** K: labelled support examples per class. Default 1. */
  shots?: number;
  /** Query examples per class (scored). Default 15. */
  queries?: number;
  /** Number of episodes. Default 600. */
  episodes?: number;
  /** Seed of the episode sampler: the same seed draws the same episodes. */
  seed: number;
  /** Classifiers evaluated on the same episodes. Default both. */
  classifiers?: FewShotClassifier[];
  /** L2-normalise the features first (SimpleShot's "L2N"). Default true. */
  normalize?: boolean;
  /** Logistic regression: full-batch gradient-descent iterations. Default 100. */
  logisticIterations?: number;
  /** Logistic regression: step size, divided by the mean ‖x‖² of the support set. Default 1. */
  logisticLr?: number;
  /** Logistic regression: L2 penalty (λ/2)·‖W‖² (bias not penalised). Default 1e-3. */
  logisticL2?: number;
}

/** Accuracy statistics of one classifier over the episodes. */
export interface FewShotStats {
  classifier: FewShotClassifier;
  /** Mean query accuracy over the episodes, in [0, 1]. */
  mean: number;
  /** Standard deviation of the episode accuracies (population, ddof 0, as numpy's default). */
  std: number;
  /** Half-width of the 95% confidence interval of the mean: 1.96 · std / √episodes. */
  ci95: number;
  /** Accuracy of every episode. */
  accuracies: Float64Array;
}

/** One N-way K-shot episode: row indices into the feature set. */
export interface Episode {
  /** The episode's classes (original labels); episode class i is `classes[i]`. */
  classes: Int32Array;
  /** Support rows, class by class: `shots` rows of classes[0], then classes[1], … */
  support: Int32Array;
  /** Query rows, class by class (`queries` per class). */
  query: Int32Array;
}

/**
 * Draw `count` N-way K-shot episodes from labelled rows. Classes are eligible when they have at
 * least shots + queries rows; support and query rows of a class are distinct. Deterministic per
 * seed (all draws come from `Rng.seed(seed)`).
 */
export function sampleEpisodes(
  labels: Int32Array,
  opts: { ways: number; shots: number; queries: number; count: number; seed: number },
): Episode[] {
  const { ways, shots, queries, count } = opts;
  const byClass = new Map<number, number[]>();
  labels.forEach((y, i) => {
    if (y < 0) throw new ConfigError(`labels[${i}]: expected a class label, got ${y} (unlabeled)`);
    const list = byClass.get(y) ?? [];
    list.push(i);
    byClass.set(y, list);
  });
  const need = shots + queries;
  const eligible = [...byClass.keys()]
    .filter((c) => byClass.get(c)!.length >= need)
    .sort((a, b) => a - b);
  if (eligible.length < ways) {
    throw new ConfigError(
      `ways: expected at most ${eligible.length} (classes with ≥ shots + queries = ${need} rows), got ${ways}`,
    );
  }
  const rng = Rng.seed(opts.seed);
  const out: Episode[] = [];
  for (let e = 0; e < count; e++) {
    const classes = Int32Array.from(partialShuffle(eligible.slice(), ways, rng));
    const support = new Int32Array(ways * shots);
    const query = new Int32Array(ways * queries);
    classes.forEach((c, ci) => {
      const rows = partialShuffle(byClass.get(c)!.slice(), need, rng);
      for (let s = 0; s < shots; s++) support[ci * shots + s] = rows[s];
      for (let q = 0; q < queries; q++) query[ci * queries + q] = rows[shots + q];
    });
    out.push({ classes, support, query });
  }
  return out;
}

/** The first m elements of a uniform random permutation (partial Fisher–Yates). */
function partialShuffle<T>(items: T[], m: number, rng: Rng): T[] {
  for (let i = 0; i < m; i++) {
    const j = rng.int(i, items.length);
    const t = items[i];
    items[i] = items[j];
    items[j] = t;
  }
  return items.slice(0, m);
}

/**
 * Mean, population standard deviation and 95% confidence half-width (1.96·std/√n) of a list of
 * accuracies, the usual few-shot report "mean ± ci95".
 */
export function meanConfidence(values: ArrayLike<number>): {
  mean: number;
  std: number;
  ci95: number;
} {
  const n = values.length;
  if (n === 0) throw new ConfigError("values: expected at least one value, got 0");
  let s = 0;
  for (let i = 0; i < n; i++) s += values[i];
  const mean = s / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (values[i] - mean) ** 2;
  const std = Math.sqrt(v / n);
  return { mean, std, ci95: (1.96 * std) / Math.sqrt(n) };
}

/**
 * N-way K-shot evaluation of frozen features: in each episode a classifier is fitted on the
 * support rows and scored on the query rows. `prototype`: nearest class centroid (Euclidean, on
 * L2-normalised features by default — SimpleShot); `logistic`: multinomial logistic regression
 * trained by full-batch gradient descent from zero. Every classifier sees the same episodes.
 */
/** {@link fewShot}'s defaults: 5-way 1-shot, 15 queries per class, 600 episodes. */
export const FEW_SHOT_DEFAULTS = { ways: 5, shots: 1, queries: 15, episodes: 600 } as const;

export function fewShot(features: FeatureSet, options: FewShotOptions): FewShotStats[] {
  const ways = checkNumber("ways", options.ways ?? FEW_SHOT_DEFAULTS.ways, {
    integer: true,
    min: 2,
  });
  const shots = checkNumber("shots", options.shots ?? FEW_SHOT_DEFAULTS.shots, {
    integer: true,
    min: 1,
  });
  const queries = checkNumber("queries", options.queries ?? FEW_SHOT_DEFAULTS.queries, {
    integer: true,
    min: 1,
  });
  const count = checkNumber("episodes", options.episodes ?? FEW_SHOT_DEFAULTS.episodes, {
    integer: true,
    min: 1,
  });
  const seed = checkNumber("seed", options.seed, { integer: true });
  const classifiers = options.classifiers ?? ["prototype", "logistic"];
  if (
    !Array.isArray(classifiers) ||
    classifiers.length === 0 ||
    classifiers.some((c) => c !== "prototype" && c !== "logistic")
  ) {
    throw new ConfigError(
      `classifiers: expected a non-empty list of "prototype" | "logistic", got ${describeValue(classifiers)}`,
    );
  }
  const iterations = checkNumber("logisticIterations", options.logisticIterations ?? 100, {
    integer: true,
    min: 1,
  });
  const lr = checkNumber("logisticLr", options.logisticLr ?? 1, { min: 0, minExclusive: true });
  const l2 = checkNumber("logisticL2", options.logisticL2 ?? 1e-3, { min: 0 });
  checkLabeled("features", features);
  const { dim } = features;
  const x =
    options.normalize === false ? features.features : l2NormalizeRows(features.features, dim);
  const episodes = sampleEpisodes(features.labels, { ways, shots, queries, count, seed });

  return classifiers.map((classifier) => {
    const accuracies = new Float64Array(count);
    episodes.forEach((ep, e) => {
      const scores =
        classifier === "prototype"
          ? prototypeScores(x, dim, ep, ways, shots)
          : logisticScores(x, dim, ep, ways, shots, iterations, lr, l2);
      let hits = 0;
      for (let q = 0; q < ep.query.length; q++) {
        let best = 0;
        for (let c = 1; c < ways; c++) if (scores[q * ways + c] > scores[q * ways + best]) best = c;
        if (best === Math.floor(q / queries)) hits++;
      }
      accuracies[e] = hits / ep.query.length;
    });
    return { classifier, ...meanConfidence(accuracies), accuracies };
  });
}

/** Negative squared distance of each query row to each class centroid: [queries·ways, ways]. */
function prototypeScores(
  x: Float32Array,
  dim: number,
  ep: Episode,
  ways: number,
  shots: number,
): Float64Array {
  const centroids = new Float64Array(ways * dim);
  ep.support.forEach((row, i) => {
    const c = Math.floor(i / shots);
    for (let j = 0; j < dim; j++) centroids[c * dim + j] += x[row * dim + j] / shots;
  });
  const out = new Float64Array(ep.query.length * ways);
  ep.query.forEach((row, q) => {
    for (let c = 0; c < ways; c++) {
      let d = 0;
      for (let j = 0; j < dim; j++) d += (x[row * dim + j] - centroids[c * dim + j]) ** 2;
      out[q * ways + c] = -d;
    }
  });
  return out;
}

/** Logits of a softmax regression fitted on the support set by gradient descent. */
function logisticScores(
  x: Float32Array,
  dim: number,
  ep: Episode,
  ways: number,
  shots: number,
  iterations: number,
  lr: number,
  l2: number,
): Float64Array {
  const n = ep.support.length;
  let sq = 0;
  for (const row of ep.support) for (let j = 0; j < dim; j++) sq += x[row * dim + j] ** 2;
  const step = lr / Math.max(sq / n, 1e-12);
  const w = new Float64Array(dim * ways);
  const b = new Float64Array(ways);
  const gw = new Float64Array(dim * ways);
  const gb = new Float64Array(ways);
  const p = new Float64Array(ways);
  for (let it = 0; it < iterations; it++) {
    gw.fill(0);
    gb.fill(0);
    for (let i = 0; i < n; i++) {
      const o = ep.support[i] * dim;
      softmaxRow(x, o, dim, w, b, ways, p);
      p[Math.floor(i / shots)] -= 1; // ∂CE/∂logits = softmax − onehot
      for (let c = 0; c < ways; c++) {
        const g = p[c] / n;
        gb[c] += g;
        for (let j = 0; j < dim; j++) gw[j * ways + c] += x[o + j] * g;
      }
    }
    for (let k = 0; k < w.length; k++) w[k] -= step * (gw[k] + l2 * w[k]);
    for (let c = 0; c < ways; c++) b[c] -= step * gb[c];
  }
  const out = new Float64Array(ep.query.length * ways);
  ep.query.forEach((row, q) => {
    for (let c = 0; c < ways; c++) {
      let z = b[c];
      for (let j = 0; j < dim; j++) z += x[row * dim + j] * w[j * ways + c];
      out[q * ways + c] = z;
    }
  });
  return out;
}

function softmaxRow(
  x: Float32Array,
  o: number,
  dim: number,
  w: Float64Array,
  b: Float64Array,
  ways: number,
  p: Float64Array,
): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let c = 0; c < ways; c++) {
    let z = b[c];
    for (let j = 0; j < dim; j++) z += x[o + j] * w[j * ways + c];
    p[c] = z;
    if (z > max) max = z;
  }
  let s = 0;
  for (let c = 0; c < ways; c++) {
    p[c] = Math.exp(p[c] - max);
    s += p[c];
  }
  for (let c = 0; c < ways; c++) p[c] /= s;
}

/**
 * The SiT reference's few-shot protocol (`num_imgs_per_cat = k`): keep the first k rows of each
 * class, in dataset order. Takes the labels, or a dataset with `labels` (e.g. any @sit/data
 * dataset); returns the kept indices, ascending (wrap them in @sit/data's `SubsetDataset` to
 * fine-tune, or pass them to {@link selectRows} before a linear probe). Unlabeled data is
 * refused; classes with fewer than k rows keep all of theirs, as the reference does.
 */
export function firstKPerClass(source: ArrayLike<number> | Dataset, k: number): Int32Array {
  checkNumber("k", k, { integer: true, min: 1 });
  let labels: ArrayLike<number>;
  if (
    source !== null &&
    typeof source === "object" &&
    typeof (source as Dataset).get === "function"
  ) {
    const ds = source as Dataset;
    if (!ds.labels)
      throw new ConfigError(
        "source: expected a labelled dataset (with labels), got one without labels (firstKPerClass needs a labelled dataset)",
      );
    labels = ds.labels;
  } else if (
    source !== null &&
    typeof source === "object" &&
    typeof (source as ArrayLike<number>).length === "number"
  ) {
    labels = source as ArrayLike<number>;
  } else {
    throw new ConfigError(
      `source: expected labels or a labelled dataset, got ${describeValue(source)}`,
    );
  }
  const seen = new Map<number, number>();
  const kept: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0)
      throw new ConfigError(
        `labels[${i}]: expected a class label ≥ 0, got ${y} (firstKPerClass needs a labelled dataset)`,
      );
    const s = seen.get(y) ?? 0;
    if (s < k) {
      kept.push(i);
      seen.set(y, s + 1);
    }
  }
  return Int32Array.from(kept);
}
