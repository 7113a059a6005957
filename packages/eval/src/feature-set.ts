import { ConfigError, ShapeError, checkNumber, describeValue } from "@sit/core";

/**
 * Frozen features of a dataset: `features` is row-major `[n, dim]`, `labels[i]` is the class of
 * row i, or -1 when the source dataset has no label for it (unlabeled data is normal in SSL; the
 * evaluation protocols refuse it with a clear error).
 */
export interface FeatureSet {
  features: Float32Array;
  labels: Int32Array;
  dim: number;
}

/** Throw unless `set` is a well-formed feature set (sizes agree, dim a positive integer). */
export function checkFeatureSet(name: string, set: FeatureSet): void {
  if (
    set === null ||
    typeof set !== "object" ||
    !(set.features instanceof Float32Array) ||
    !(set.labels instanceof Int32Array)
  ) {
    throw new ConfigError(
      `${name}: expected { features: Float32Array, labels: Int32Array, dim: number }, got ${describeValue(set)}`,
    );
  }
  checkNumber(`${name}.dim`, set.dim, { integer: true, min: 1 });
  if (set.features.length !== set.labels.length * set.dim) {
    throw new ShapeError(
      `${name}: expected features of length labels.length × dim = ${set.labels.length} × ${set.dim} = ${set.labels.length * set.dim}, got ${set.features.length}`,
    );
  }
}

/**
 * Throw unless every row of `set` carries a label in [0, numClasses). The error says when the
 * labels are missing altogether (an unlabeled dataset), which is the usual cause.
 */
export function checkLabeled(name: string, set: FeatureSet, numClasses?: number): void {
  checkFeatureSet(name, set);
  if (set.labels.length === 0) throw new ConfigError(`${name}: expected at least one row, got 0`);
  for (let i = 0; i < set.labels.length; i++) {
    const y = set.labels[i];
    if (y < 0) {
      throw new ConfigError(
        `${name}.labels[${i}]: expected a class label, got ${y} (the dataset is unlabeled; evaluation needs labels)`,
      );
    }
    if (numClasses !== undefined && y >= numClasses) {
      throw new ConfigError(
        `${name}.labels[${i}]: expected a label in [0, ${numClasses}) (numClasses), got ${y}`,
      );
    }
  }
}

/** One more than the largest label of the given sets (labels must be checked first). */
export function inferNumClasses(...sets: FeatureSet[]): number {
  let max = -1;
  for (const s of sets) for (let i = 0; i < s.labels.length; i++) max = Math.max(max, s.labels[i]);
  return max + 1;
}

/** The rows `indices` of a feature set, as a new feature set (e.g. after {@link firstKPerClass}). */
export function selectRows(set: FeatureSet, indices: ArrayLike<number>): FeatureSet {
  checkFeatureSet("set", set);
  const n = set.labels.length;
  const { dim } = set;
  const features = new Float32Array(indices.length * dim);
  const labels = new Int32Array(indices.length);
  for (let r = 0; r < indices.length; r++) {
    const i = indices[r];
    if (!Number.isInteger(i) || i < 0 || i >= n)
      throw new ConfigError(`indices[${r}]: expected an integer in [0, ${n}), got ${i}`);
    features.set(set.features.subarray(i * dim, (i + 1) * dim), r * dim);
    labels[r] = set.labels[i];
  }
  return { features, labels, dim };
}

/** L2-normalise each row of a `[n, dim]` matrix into a new array (zero rows stay zero). */
export function l2NormalizeRows(x: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += dim) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[o + j] * x[o + j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) out[o + j] = x[o + j] * inv;
  }
  return out;
}
