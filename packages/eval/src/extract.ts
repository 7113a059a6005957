import * as tf from "@tensorflow/tfjs";
import {
  ConfigError,
  IOError,
  Module,
  Rng,
  ShapeError,
  checkNumber,
  describeValue,
} from "@sit/core";
import type { Dataset, Sample } from "@sit/data";
import type { FeatureSet } from "./feature-set";
import { type ImageTransform, checkTransform, samplesToImages } from "./images";

/** Token outputs of a ViT-like backbone (what @sit/vit's `VisionTransformer.forward` returns). */
export interface TokenOutput {
  cls: tf.Tensor;
  patchTokens: tf.Tensor;
}

/** A module whose `forward(images)` returns CLS and patch tokens, e.g. @sit/vit's VisionTransformer. */
export interface TokenBackbone extends Module {
  forward(images: tf.Tensor): TokenOutput;
}

/**
 * What features are extracted with: a ViT-like module (pooled per `pool`), or any function from
 * NHWC images `[B, H, W, C]` to features `[B, D]` (or to token outputs, then pooled).
 */
export type Backbone = TokenBackbone | ((images: tf.Tensor4D) => tf.Tensor | TokenOutput);

/** How token outputs become one vector: the CLS token, the mean of patch tokens, or both concatenated (2D). */
export type Pool = "cls" | "mean" | "cls+mean";

/** Options of {@link extractFeatures}. */
export interface ExtractOptions {
  /** Pooling of token outputs. Default "cls". Not allowed for a function returning `[B, D]`. */
  pool?: Pool;
  /** Images per forward pass. Default 64. */
  batchSize?: number;
  /**
   * How samples become the backbone's input: @sit/data's `evalTransform()` (resize + centre crop
   * + normalise; needed for images of different sizes) or a function over each batch `[B, H, W, C]`
   * in [0, 1]. Called with a fixed-seed Rng: an evaluation transform should not be random.
   */
  transform?: ImageTransform;
  /** Description of `transform` for the cache key (required with a cache and a transform). */
  transformKey?: string;
  /**
   * On-disk cache (Node: `extractFeatures` of @sit/eval/node). The key covers the weights (a hash
   * of the module's weights, or `modelKey`, required for function backbones — e.g.
   * `hashCheckpointFile` of the checkpoint), the dataset (`datasetKey` plus a content
   * fingerprint), `transformKey` and `pool`.
   */
  cache?: { dir: string; modelKey?: string; datasetKey?: string };
  /** Called after each batch with (rows done, total rows). */
  onProgress?: (done: number, total: number) => void;
  /** Where cache problems are reported (a corrupt file is rebuilt). Default console.warn. */
  warn?: (message: string) => void;
}

/** A {@link FeatureSet} plus where it came from. */
export interface ExtractedFeatures extends FeatureSet {
  /** `hit`: read from the cache; `computed`: no cache or no file yet; `rebuilt`: the cache file was unusable and was rewritten. */
  cache: "hit" | "computed" | "rebuilt";
  /** The cache file used, if any. */
  cachePath?: string;
}

/** What identifies a feature file: any change to one of these fields selects another file. */
export interface FeatureCacheKey {
  /** The weights: a checkpoint hash or a user-provided model key. */
  model: string;
  /** The dataset's identity (user key and/or content fingerprint). */
  dataset: string;
  /** The transform's description ("none" when there is none). */
  transform: string;
  /** The pooling ("cls", "mean", "cls+mean", or "function" for a function backbone). */
  pool: string;
}

/**
 * A feature cache: what @sit/eval/node gives {@link extractFeaturesOn} (files on disk).
 * @internal
 */
export interface FeatureCacheHost {
  key(
    backbone: Backbone,
    isModule: boolean,
    dataset: Dataset,
    options: ExtractOptions,
  ): Promise<FeatureCacheKey>;
  path(dir: string, key: FeatureCacheKey): string;
  read(path: string, key: FeatureCacheKey): FeatureSet | null;
  write(path: string, key: FeatureCacheKey, set: FeatureSet): void;
}

function isTokenBackbone(b: unknown): b is TokenBackbone {
  return b instanceof Module && typeof (b as { forward?: unknown }).forward === "function";
}

/**
 * Run a frozen backbone over a dataset in order and return one feature row per sample, with its
 * label (-1 for unlabeled samples). Modules run in eval mode (restored afterwards); nothing is
 * trained. Runs in a web page as well as under Node; `cache` (features in files) is Node's:
 * `extractFeatures` of `@sit/eval/node` stores them on disk (atomically, checksummed) and reuses
 * them while the weights, dataset, transform and pooling are unchanged.
 */
export async function extractFeatures(
  backbone: Backbone,
  dataset: Dataset,
  options: ExtractOptions = {},
): Promise<ExtractedFeatures> {
  return extractFeaturesOn(undefined, backbone, dataset, options);
}

/**
 * {@link extractFeatures} with a feature cache (or none).
 * @internal
 */
export async function extractFeaturesOn(
  cacheHost: FeatureCacheHost | undefined,
  backbone: Backbone,
  dataset: Dataset,
  options: ExtractOptions = {},
): Promise<ExtractedFeatures> {
  if (options.cache && !cacheHost)
    throw new ConfigError(
      "options.cache: feature caches in files need Node; use extractFeatures from @sit/eval/node",
    );
  const isModule = isTokenBackbone(backbone);
  if (!isModule && typeof backbone !== "function")
    throw new ConfigError(
      `backbone: expected a module with forward(images) → {cls, patchTokens} or a function images → [B, D], got ${describeValue(backbone)}`,
    );
  checkDataset(dataset);
  const batchSize = checkNumber("batchSize", options.batchSize ?? 64, { integer: true, min: 1 });
  const pool = options.pool;
  if (pool !== undefined && pool !== "cls" && pool !== "mean" && pool !== "cls+mean")
    throw new ConfigError(`pool: expected "cls", "mean" or "cls+mean", got ${describeValue(pool)}`);
  checkTransform("transform", options.transform);
  const warn = options.warn ?? ((m: string) => console.warn(m));

  let key: FeatureCacheKey | undefined;
  let path: string | undefined;
  let rebuilt = false;
  if (options.cache && cacheHost) {
    key = await cacheHost.key(backbone, isModule, dataset, options);
    path = cacheHost.path(options.cache.dir, key);
    try {
      const hit = cacheHost.read(path, key);
      if (hit) {
        if (hit.labels.length !== dataset.length)
          throw new IOError(
            `feature cache ${path}: holds ${hit.labels.length} rows, dataset has ${dataset.length}`,
          );
        return { ...hit, cache: "hit", cachePath: path };
      }
    } catch (err) {
      if (!(err instanceof IOError)) throw err;
      warn(`${err.message}; recomputing the features`);
      rebuilt = true;
    }
  }

  const set = await computeFeatures(backbone, isModule, dataset, batchSize, options);
  if (key && path) cacheHost?.write(path, key, set);
  return { ...set, cache: rebuilt ? "rebuilt" : "computed", ...(path ? { cachePath: path } : {}) };
}

function checkDataset(dataset: Dataset): void {
  if (dataset === null || typeof dataset !== "object" || typeof dataset.get !== "function")
    throw new ConfigError(
      `dataset: expected a Dataset (length, get(i)), got ${describeValue(dataset)}`,
    );
  checkNumber("dataset.length", dataset.length, { integer: true, min: 1 });
}

async function computeFeatures(
  backbone: Backbone,
  isModule: boolean,
  dataset: Dataset,
  batchSize: number,
  options: ExtractOptions,
): Promise<FeatureSet> {
  const n = dataset.length;
  const labels = new Int32Array(n);
  let features: Float32Array | undefined;
  let dim = 0;
  const modes = isModule ? (backbone as Module).namedModules().map(([, m]) => m.training) : [];
  if (isModule) (backbone as Module).eval();
  try {
    for (let start = 0; start < n; start += batchSize) {
      const count = Math.min(batchSize, n - start);
      const samples = await Promise.all(
        Array.from({ length: count }, (_, i) => Promise.resolve(dataset.get(start + i))),
      );
      samples.forEach((s, i) => {
        labels[start + i] = sampleLabel(s, start + i);
      });
      const images = samplesToImages(samples, options.transform, Rng.seed(start), start);
      let out: tf.Tensor;
      try {
        out = tf.tidy(() => pooled(backbone, isModule, images, options.pool));
      } finally {
        images.dispose();
      }
      if (out.rank !== 2 || out.shape[0] !== count) {
        const shape = out.shape;
        out.dispose();
        throw new ShapeError(`backbone output: expected [${count}, D] features, got [${shape}]`);
      }
      // An asynchronous read: WebGPU under Node has no synchronous one.
      const rows = (await out.data()) as Float32Array;
      if (!features) {
        dim = out.shape[1] as number;
        features = new Float32Array(n * dim);
      } else if (out.shape[1] !== dim) {
        out.dispose();
        throw new ShapeError(
          `backbone output: expected dimension ${dim} in every batch, got ${out.shape[1]}`,
        );
      }
      features.set(rows, start * dim);
      out.dispose();
      options.onProgress?.(start + count, n);
    }
  } finally {
    if (isModule)
      (backbone as Module).namedModules().forEach(([, m], i) => {
        m.training = modes[i];
      });
  }
  return { features: features!, labels, dim };
}

function sampleLabel(s: Sample, i: number): number {
  if (s.label === undefined) return -1;
  if (!Number.isInteger(s.label) || s.label < 0)
    throw new ConfigError(
      `dataset.get(${i}).label: expected a non-negative integer or undefined, got ${describeValue(s.label)}`,
    );
  return s.label;
}

function pooled(
  backbone: Backbone,
  isModule: boolean,
  images: tf.Tensor4D,
  pool: Pool | undefined,
): tf.Tensor {
  const out = isModule
    ? (backbone as TokenBackbone).forward(images)
    : (backbone as (x: tf.Tensor4D) => tf.Tensor | TokenOutput)(images);
  if (out instanceof tf.Tensor) {
    if (pool !== undefined)
      throw new ConfigError(
        `pool: the backbone function returns features [B, D] directly, so pool must be left unset, got ${describeValue(pool)}`,
      );
    return out;
  }
  if (!out || !(out.cls instanceof tf.Tensor) || !(out.patchTokens instanceof tf.Tensor))
    throw new ShapeError(
      `backbone output: expected a tensor [B, D] or {cls, patchTokens}, got ${describeValue(out)}`,
    );
  const p = pool ?? "cls";
  if (p === "cls") return out.cls;
  const mean = tf.mean(out.patchTokens, 1);
  return p === "mean" ? mean : tf.concat([out.cls, mean], 1);
}
