import { ConfigError, describeValue } from "@sit/core";
import * as tf from "@tensorflow/tfjs";

/**
 * Where batches come from: an iterable (sync or async) that is iterated afresh every epoch, or a
 * function `epoch => iterable` that builds each epoch's (e.g. reshuffled with a seed derived from
 * the epoch). A one-shot iterator (a generator object) only works for a single epoch: pass a
 * function for more.
 */
export type BatchSource<Batch> =
  | Iterable<Batch>
  | AsyncIterable<Batch>
  | ((epoch: number) => Iterable<Batch> | AsyncIterable<Batch>);

/** A uniform async view of one epoch's batches. */
export interface EpochIterator<Batch> {
  next(): Promise<IteratorResult<Batch>>;
  /** Stop early (lets generators and prefetching loaders clean up). */
  close(): Promise<void>;
}

function isIterable(v: unknown): v is Iterable<unknown> {
  return v != null && typeof (v as Iterable<unknown>)[Symbol.iterator] === "function";
}

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return v != null && typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}

const EXPECTED =
  "an Iterable or AsyncIterable of batches, or a function (epoch) => Iterable | AsyncIterable";

/** Throw a ConfigError naming `loader` unless it is a {@link BatchSource}. */
export function checkBatchSource(loader: unknown): void {
  if (typeof loader === "function" || isIterable(loader) || isAsyncIterable(loader)) return;
  throw new ConfigError(`loader: expected ${EXPECTED}, got ${describeValue(loader)}`);
}

/** Open the batches of `epoch`. */
export function openEpoch<Batch>(loader: BatchSource<Batch>, epoch: number): EpochIterator<Batch> {
  const source = typeof loader === "function" ? loader(epoch) : loader;
  if (isAsyncIterable(source)) {
    const it = source[Symbol.asyncIterator]();
    return {
      next: () => it.next(),
      close: async () => {
        await it.return?.();
      },
    };
  }
  if (isIterable(source)) {
    const it = source[Symbol.iterator]();
    return {
      next: async () => it.next(),
      close: async () => {
        it.return?.();
      },
    };
  }
  throw new ConfigError(
    `loader(${epoch}): expected the function to return an Iterable or AsyncIterable, got ${describeValue(source)}`,
  );
}

/** The number of batches per epoch that a loader states (`length` of an array or array-like). */
export function statedLength(loader: unknown): number | undefined {
  if (typeof loader === "function") return undefined;
  const n = (loader as { length?: unknown } | null)?.length;
  return typeof n === "number" && Number.isInteger(n) && n >= 0 ? n : undefined;
}

function firstTensor(value: unknown, depth: number): tf.Tensor | undefined {
  if (value instanceof tf.Tensor) return value;
  if (depth > 3 || value === null || typeof value !== "object") return undefined;
  const items = Array.isArray(value) ? value : Object.values(value);
  for (const item of items) {
    const t = firstTensor(item, depth + 1);
    if (t) return t;
  }
  return undefined;
}

/**
 * Images in a batch: `batchSize` when it is a number or a function, else the batch's own numeric
 * `batchSize` property, else the leading dimension of the first tensor found in it (the batch
 * itself, or its array items / object values, depth-first). Multi-view batches (`[view1, view2]`)
 * therefore count images, not views.
 */
export function countImages<Batch>(
  batch: Batch,
  batchSize?: number | ((batch: Batch) => number),
): number {
  if (typeof batchSize === "number") return batchSize;
  if (typeof batchSize === "function") return batchSize(batch);
  const own = (batch as { batchSize?: unknown } | null)?.batchSize;
  if (typeof own === "number") return own;
  const t = firstTensor(batch, 0);
  if (t && t.rank > 0) return t.shape[0];
  throw new ConfigError(
    `batchSize: cannot count the images of a batch ${describeValue(batch)}; give fit a batchSize option (a number or a function batch => number) or a batch with a numeric batchSize property`,
  );
}
