import * as tf from "@tensorflow/tfjs";

/** A run of consecutive tensors of equal size in a flat buffer. */
interface Run {
  /** Element offset of the run in the flat buffer. */
  offset: number;
  /** Number of tensors in the run. */
  count: number;
  /** Elements per tensor. */
  size: number;
}

/**
 * How a list of parameter tensors is packed into one flat float32 buffer, so that an optimiser
 * runs its arithmetic once per group instead of once per tensor.
 *
 * Tensors are ordered by size (descending, ties in registration order) so that tensors of equal
 * size sit next to each other: per-tensor reductions (gradient norms for clipping) then take one
 * `sum` over a `[count, size]` view per distinct size instead of one per tensor. A ViT has ~150
 * parameter tensors but fewer than ten distinct sizes.
 */
export class FlatLayout {
  /** Parameter names in flat order. */
  readonly names: readonly string[];
  readonly shapes: readonly number[][];
  readonly sizes: readonly number[];
  readonly offsets: readonly number[];
  readonly total: number;
  private readonly runs: readonly Run[];

  constructor(entries: readonly { name: string; shape: number[] }[]) {
    const order = entries
      .map((e, i) => ({ ...e, i, size: e.shape.reduce((a, b) => a * b, 1) }))
      .sort((a, b) => b.size - a.size || a.i - b.i);
    this.names = order.map((e) => e.name);
    this.shapes = order.map((e) => [...e.shape]);
    this.sizes = order.map((e) => e.size);
    const offsets: number[] = [];
    const runs: Run[] = [];
    let offset = 0;
    for (const size of this.sizes) {
      offsets.push(offset);
      const last = runs[runs.length - 1];
      if (last && last.size === size) last.count++;
      else runs.push({ offset, count: 1, size });
      offset += size;
    }
    this.offsets = offsets;
    this.total = offset;
    this.runs = runs;
  }

  /** Number of tensors. */
  get length(): number {
    return this.names.length;
  }

  /** Concatenate `tensors` (given in flat order) into one 1-D buffer. */
  flatten(tensors: readonly tf.Tensor[]): tf.Tensor1D {
    // Rank-1 tensors are used as they are: a reshape is a kernel launch too.
    const flat = tensors.map((t) => (t.rank === 1 ? t : t.reshape([-1])));
    if (flat.length > 1) return tf.concat(flat) as tf.Tensor1D;
    return (flat[0] === tensors[0] ? flat[0].clone() : flat[0]) as tf.Tensor1D;
  }

  /** Split a flat buffer back into tensors of the parameters' shapes, in flat order. */
  unflatten(flat: tf.Tensor): tf.Tensor[] {
    const parts = this.length === 1 ? [flat] : tf.split(flat, this.sizes as number[]);
    return parts.map((p, i) => (this.shapes[i].length === 1 ? p : p.reshape(this.shapes[i])));
  }

  /**
   * Per-tensor sums of a flat buffer of non-negative values (e.g. squared gradients), in flat
   * order: one `sum` per run of equal-sized tensors.
   */
  segmentSums(flat: tf.Tensor1D): tf.Tensor1D {
    const sums = this.runs.map((r) => {
      const part = this.runs.length === 1 ? flat : flat.slice(r.offset, r.count * r.size);
      return part.reshape([r.count, r.size]).sum(1);
    });
    return (sums.length === 1 ? sums[0] : tf.concat(sums)) as tf.Tensor1D;
  }

  /** Index of each element's tensor (int32, length `total`), to broadcast per-tensor values with `gather`. */
  segmentIds(): tf.Tensor1D {
    const ids = new Int32Array(this.total);
    for (let i = 0; i < this.length; i++)
      ids.fill(i, this.offsets[i], this.offsets[i] + this.sizes[i]);
    return tf.tensor1d(ids, "int32");
  }
}
