import type * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng, checkNumber } from "@sit/core";
import type { BatchTransform, TransformOutput } from "./transforms/pipeline";
import type { Dataset, Sample } from "./types";

/** Fields every batch has. */
export interface BatchInfo {
  /** Dataset indices of the batch's samples, in batch order. */
  indices: Int32Array;
  /** Labels in batch order (−1 for a sample without one); absent when no sample has a label. */
  labels?: Int32Array;
  epoch: number;
  /** Batch number within the epoch. */
  step: number;
}

/** A batch of a multi-view transform: `views[v]` is `[B, H, W, C]`. The caller disposes the tensors. */
export interface ViewsBatch extends BatchInfo {
  views: tf.Tensor4D[];
}

/** A batch of a single-view (evaluation) transform: `[B, H, W, C]`. The caller disposes it. */
export interface ImagesBatch extends BatchInfo {
  images: tf.Tensor4D;
}

/** The batch type a transform produces. */
export type BatchOf<O extends TransformOutput> = O extends "images" ? ImagesBatch : ViewsBatch;

/** Dispose every tensor of a batch. */
export function disposeBatch(batch: ViewsBatch | ImagesBatch): void {
  if ("views" in batch) for (const v of batch.views) v.dispose();
  else batch.images.dispose();
}

/** Options of {@link DataLoader}. */
export interface LoaderOptions<O extends TransformOutput> {
  transform: BatchTransform<O>;
  batchSize: number;
  /** Seed of the shuffles and every augmentation; default 0. */
  seed?: number;
  /** Shuffle each epoch (default true); false keeps dataset order. */
  shuffle?: boolean;
  /** Drop the last incomplete batch (default false). */
  dropLast?: boolean;
  /** Number of epochs that `for await (… of loader)` runs; default 1. */
  epochs?: number;
  /** First epoch of `for await (… of loader)` (resuming a run); default 0. */
  startEpoch?: number;
  /** Transformed batches kept ready ahead of the consumer (bounds tensor memory); default 2, at least 1. */
  prefetch?: number;
  /** Batches whose samples are read/decoded ahead (bounds decoded-sample memory); default prefetch + 2. */
  readAhead?: number;
}

/**
 * Batches of transformed samples, shuffled with a seed, prefetched in the background.
 *
 * Determinism: epoch e's order and every augmentation of it derive only from `(seed, e)`: the
 * epoch's generator is the (e+1)-th `split()` of `Rng.seed(seed)`; it draws the permutation, then
 * one child generator per batch in batch order. Prefetching depth and decoding speed never
 * change the batches.
 *
 * Overlap: sample reads (sharp decoding in libuv or the `DecodePool` threads of @sit/data/node)
 * run ahead by `readAhead` batches; transforms run on the JS thread whenever the consumer is waiting or
 * awaiting something else (e.g. a GPU step), keeping up to `prefetch` batches ready.
 *
 * Ownership: every yielded tensor belongs to the caller (dispose it, or use
 * {@link disposeBatch}); batches still queued when iteration stops early (`break`, `return()`,
 * {@link DataLoader.close}) are disposed by the loader.
 */
export class DataLoader<O extends TransformOutput = TransformOutput>
  implements AsyncIterable<BatchOf<O>>
{
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly epochs: number;
  readonly startEpoch: number;
  readonly prefetch: number;
  readonly readAhead: number;
  readonly transform: BatchTransform<O>;
  private readonly runs = new Set<EpochRun<O>>();

  constructor(
    readonly dataset: Dataset,
    options: LoaderOptions<O>,
  ) {
    if (!dataset || typeof dataset.get !== "function" || !Number.isInteger(dataset.length))
      throw new ConfigError("dataset: expected a Dataset (length and get(index))");
    if (dataset.length === 0)
      throw new ConfigError("dataset: expected a non-empty dataset, got length 0");
    if (!options?.transform || typeof options.transform.apply !== "function")
      throw new ConfigError("transform: expected a BatchTransform (e.g. sitTwoViewTransform())");
    this.transform = options.transform;
    this.batchSize = checkNumber("batchSize", options.batchSize, { min: 1, integer: true });
    this.seed = checkNumber("seed", options.seed ?? 0, { integer: true });
    this.shuffle = options.shuffle ?? true;
    this.dropLast = options.dropLast ?? false;
    this.epochs = checkNumber("epochs", options.epochs ?? 1, { min: 0, integer: true });
    this.startEpoch = checkNumber("startEpoch", options.startEpoch ?? 0, { min: 0, integer: true });
    this.prefetch = checkNumber("prefetch", options.prefetch ?? 2, { min: 1, integer: true });
    this.readAhead = checkNumber("readAhead", options.readAhead ?? this.prefetch + 2, {
      min: 1,
      integer: true,
    });
    if (this.dropLast && dataset.length < this.batchSize)
      throw new ConfigError(
        `batchSize: expected at most the dataset length ${dataset.length} with dropLast, got ${this.batchSize}`,
      );
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.dataset.length / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The dataset indices of epoch `epoch`, in the order they are batched. */
  epochOrder(epoch: number): Int32Array {
    return this.epochRng(epoch).order;
  }

  private epochRng(epoch: number): { rng: Rng; order: Int32Array } {
    checkNumber("epoch", epoch, { min: 0, integer: true });
    const root = Rng.seed(this.seed);
    let rng = root.split();
    for (let e = 0; e < epoch; e++) rng = root.split();
    const n = this.dataset.length;
    const order = this.shuffle ? rng.permutation(n) : Int32Array.from({ length: n }, (_, i) => i);
    return { rng, order };
  }

  /** Iterate over one epoch. Stop early with `break` or `return()`; queued tensors are then disposed. */
  epoch(epoch: number): AsyncIterableIterator<BatchOf<O>> {
    const { rng, order } = this.epochRng(epoch);
    const run: EpochRun<O> = new EpochRun(this, epoch, rng, order, () => this.runs.delete(run));
    this.runs.add(run);
    return run;
  }

  /** Iterate over epochs `startEpoch … epochs − 1`. */
  async *[Symbol.asyncIterator](): AsyncIterator<BatchOf<O>> {
    for (let e = this.startEpoch; e < this.epochs; e++) yield* this.epoch(e);
  }

  /** Stop every running epoch, dispose prefetched batches and wait for background work to stop. */
  async close(): Promise<void> {
    await Promise.all([...this.runs].map((r) => r.return()));
  }
}

function batchLabels(samples: readonly Sample[]): Int32Array | undefined {
  if (!samples.some((s) => s.label !== undefined)) return undefined;
  return Int32Array.from(samples, (s) => s.label ?? -1);
}

/** One epoch's pipeline: read-ahead of samples, a sequential producer of batches, a bounded queue. */
class EpochRun<O extends TransformOutput> implements AsyncIterableIterator<BatchOf<O>> {
  private readonly numBatches: number;
  private readonly reads = new Map<number, Promise<Sample[]>>();
  private readonly ready: BatchOf<O>[] = [];
  private error: { at: number; err: unknown } | null = null;
  private produced = 0;
  private consumed = 0;
  private closed = false;
  private wakeConsumer: (() => void) | null = null;
  private wakeProducer: (() => void) | null = null;
  private readonly producer: Promise<void>;

  constructor(
    private readonly loader: DataLoader<O>,
    private readonly epochIndex: number,
    private readonly rng: Rng,
    private readonly order: Int32Array,
    private readonly onDone: () => void,
  ) {
    this.numBatches = loader.batchesPerEpoch;
    this.producer = this.produce();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<BatchOf<O>> {
    return this;
  }

  private indicesOf(k: number): Int32Array {
    const start = k * this.loader.batchSize;
    return this.order.slice(start, Math.min(start + this.loader.batchSize, this.order.length));
  }

  private startReads(upTo: number): void {
    for (let k = this.produced; k < Math.min(upTo, this.numBatches); k++) {
      if (this.reads.has(k)) continue;
      const ds = this.loader.dataset;
      const p = Promise.all(
        Array.from(this.indicesOf(k), (i) => Promise.resolve().then(() => ds.get(i))),
      );
      p.catch(() => {}); // surfaced when the producer awaits it; never an unhandled rejection
      this.reads.set(k, p);
    }
  }

  private async produce(): Promise<void> {
    for (let k = 0; k < this.numBatches; k++) {
      // Keep at most `prefetch` finished batches.
      while (!this.closed && this.ready.length >= this.loader.prefetch)
        await new Promise<void>((resolve) => {
          this.wakeProducer = resolve;
        });
      if (this.closed) return;
      this.startReads(k + this.loader.readAhead);
      try {
        const samples = await this.reads.get(k)!;
        this.reads.delete(k);
        if (this.closed) return;
        const batchRng = this.rng.split();
        const tensors = this.loader.transform.apply(samples, batchRng);
        const info: BatchInfo = {
          indices: this.indicesOf(k),
          labels: batchLabels(samples),
          epoch: this.epochIndex,
          step: k,
        };
        const batch = (
          this.loader.transform.output === "images"
            ? { ...info, images: tensors[0] }
            : { ...info, views: tensors }
        ) as BatchOf<O>;
        this.ready.push(batch);
        this.produced = k + 1;
      } catch (err) {
        this.error = { at: k, err };
        this.wakeConsumer?.();
        return;
      }
      this.wakeConsumer?.();
    }
  }

  async next(): Promise<IteratorResult<BatchOf<O>>> {
    for (;;) {
      if (this.closed) return { done: true, value: undefined };
      if (this.ready.length > 0) {
        const value = this.ready.shift()!;
        this.consumed++;
        this.wakeProducer?.();
        this.wakeProducer = null;
        return { done: false, value };
      }
      if (this.error && this.error.at === this.consumed) {
        const { err } = this.error;
        await this.return();
        throw err;
      }
      if (this.consumed >= this.numBatches) {
        await this.return();
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
      this.wakeConsumer = null;
    }
  }

  async return(): Promise<IteratorResult<BatchOf<O>>> {
    if (!this.closed) {
      this.closed = true;
      this.wakeProducer?.();
      this.wakeConsumer?.();
      await this.producer;
      for (const b of this.ready.splice(0)) disposeBatch(b);
      this.reads.clear();
      this.onDone();
    }
    return { done: true, value: undefined };
  }
}
