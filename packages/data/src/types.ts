/**
 * One decoded image: pixels in HWC order (row-major, channels interleaved), `Uint8Array` in
 * 0…255 or `Float32Array` in [0, 1], with an optional integer label.
 */
export interface Sample {
  image: Uint8Array | Float32Array;
  height: number;
  width: number;
  /** 1 (grayscale) or 3 (RGB). */
  channels: number;
  /** Class index in [0, numClasses); absent for unlabeled data. */
  label?: number;
}

/**
 * A dataset: a length and random access to samples. `get` is synchronous for datasets held in
 * memory (IDX, CIFAR, STL-10) and returns a Promise for datasets decoded from files (image
 * folders); callers that accept both simply `await` it. Labels are optional everywhere: an
 * unlabeled dataset has no `labels`, no `numClasses`, and samples without `label`.
 */
export interface Dataset {
  readonly length: number;
  /** Class names, index = label; absent when unknown or unlabeled. */
  readonly classNames?: readonly string[];
  readonly numClasses?: number;
  /** Every sample's label in index order (cheap access for histograms and few-shot splits); absent when unlabeled. */
  readonly labels?: Int32Array;
  get(index: number): Sample | Promise<Sample>;
}
