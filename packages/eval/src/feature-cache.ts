// Node only (@sit/eval/node): cached features in files, keyed by SHA-256 of weights and data.
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, IOError, type Module, describeValue } from "@sit/core";
import { writeFileAtomic } from "@sit/core/node";
import { ConcatDataset, type Dataset, SubsetDataset } from "@sit/data";
import { FileListDataset } from "@sit/data/node";
import {
  type Backbone,
  type ExtractOptions,
  type ExtractedFeatures,
  type FeatureCacheHost,
  type FeatureCacheKey,
  type FeatureSet,
  extractFeaturesOn,
} from "@sit/eval";

const MAGIC = "SITFEAT1";
const FORMAT_VERSION = 1;

/** SHA-256 hex digest of a string or bytes. */
export function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * A key for a model's current weights: SHA-256 over every parameter and buffer (sorted names,
 * shapes, dtypes and values), so that any change to any weight changes the key.
 */
export function hashModuleWeights(module: Module): string {
  const h = createHash("sha256");
  const dict = module.stateDict();
  for (const name of Object.keys(dict).sort()) {
    const t = dict[name];
    h.update(`${name}|${t.dtype}|${t.shape.join(",")}|`);
    const v = t.dataSync();
    h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return h.digest("hex");
}

/** A key for a checkpoint file: the SHA-256 of its bytes (read in 8 MB chunks). */
export function hashCheckpointFile(path: string): string {
  if (!existsSync(path)) throw new IOError(`hashCheckpointFile: ${path} does not exist`);
  const h = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.allocUnsafe(8 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/** The file behind each index of a dataset built from image files, or undefined. */
function filesOf(dataset: Dataset): readonly string[] | undefined {
  if (dataset instanceof FileListDataset) return dataset.files;
  if (dataset instanceof SubsetDataset) {
    const files = filesOf(dataset.source);
    return files && Array.from(dataset.indices, (i) => files[i]);
  }
  if (dataset instanceof ConcatDataset) {
    const parts = dataset.parts.map(filesOf);
    return parts.every((p) => p !== undefined) ? parts.flat() : undefined;
  }
  return undefined;
}

/**
 * A key for a dataset's content: its length, labels and class names; 8 evenly spread samples'
 * pixels (they also catch decoding options); and the whole content: for datasets of image files,
 * every file's path, size and modification time; for any other dataset, every sample's pixels.
 * A dataset changed anywhere gets another key (sampling alone served stale features).
 */
export async function datasetFingerprint(dataset: Dataset): Promise<string> {
  const h = createHash("sha256");
  const n = dataset.length;
  h.update(`n=${n}|classes=${JSON.stringify(dataset.classNames ?? null)}|`);
  if (dataset.labels)
    h.update(
      new Uint8Array(dataset.labels.buffer, dataset.labels.byteOffset, dataset.labels.byteLength),
    );
  const hashSample = async (i: number) => {
    const s = await dataset.get(i);
    h.update(
      `${i}:${s.height}x${s.width}x${s.channels}:${s.label ?? -1}:${s.image.constructor.name}|`,
    );
    h.update(new Uint8Array(s.image.buffer, s.image.byteOffset, s.image.byteLength));
  };
  const picks = new Set<number>();
  for (let i = 0; i < 8; i++) picks.add(Math.round((i * (n - 1)) / 7));
  for (const i of picks) await hashSample(i);
  const files = filesOf(dataset);
  if (files) {
    // Decoding every image would cost about as much as extracting its features: stat instead.
    for (const f of files) {
      const st = statSync(f);
      h.update(`${f}|${st.size}|${st.mtimeMs}\n`);
    }
  } else {
    for (let i = 0; i < n; i++) await hashSample(i);
  }
  return h.digest("hex");
}

/** The path of the cache file for `key` inside `dir`. */
export function featureCachePath(dir: string, key: FeatureCacheKey): string {
  return join(dir, `features-${sha256(canonicalKey(key)).slice(0, 40)}.bin`);
}

function canonicalKey(key: FeatureCacheKey): string {
  return JSON.stringify({
    v: FORMAT_VERSION,
    model: key.model,
    dataset: key.dataset,
    transform: key.transform,
    pool: key.pool,
  });
}

/**
 * Write a feature set to `path` atomically. Layout: "SITFEAT1", u32 LE header length, JSON header
 * (the key, n, dim and the SHA-256 of the payload), then the payload: features (f32 LE) and
 * labels (i32 LE).
 */
export function writeFeatureCache(path: string, key: FeatureCacheKey, set: FeatureSet): void {
  const n = set.labels.length;
  const payload = new Uint8Array(set.features.byteLength + set.labels.byteLength);
  payload.set(
    new Uint8Array(set.features.buffer, set.features.byteOffset, set.features.byteLength),
    0,
  );
  payload.set(
    new Uint8Array(set.labels.buffer, set.labels.byteOffset, set.labels.byteLength),
    set.features.byteLength,
  );
  const header = Buffer.from(
    JSON.stringify({ key: canonicalKey(key), n, dim: set.dim, sha256: sha256(payload) }),
    "utf8",
  );
  const out = new Uint8Array(8 + 4 + header.length + payload.length);
  out.set(Buffer.from(MAGIC, "ascii"), 0);
  new DataView(out.buffer).setUint32(8, header.length, true);
  out.set(header, 12);
  out.set(payload, 12 + header.length);
  writeFileAtomic(path, out);
}

/**
 * Read a feature file written by {@link writeFeatureCache}. Returns null when the file is absent;
 * throws IOError when it is unreadable, truncated, belongs to another key, or fails its checksum.
 */
export function readFeatureCache(path: string, key: FeatureCacheKey): FeatureSet | null {
  if (!existsSync(path)) return null;
  const bytes = readFileSync(path);
  const fail = (why: string): never => {
    throw new IOError(`feature cache ${path}: ${why}`);
  };
  if (bytes.length < 12 || bytes.subarray(0, 8).toString("ascii") !== MAGIC)
    fail(`expected the "${MAGIC}" magic, got a different or truncated file`);
  const headerLen = bytes.readUInt32LE(8);
  if (12 + headerLen > bytes.length)
    fail(`header of ${headerLen} bytes runs past the end of the file`);
  let header: { key: string; n: number; dim: number; sha256: string };
  try {
    header = JSON.parse(bytes.subarray(12, 12 + headerLen).toString("utf8"));
  } catch {
    return fail("header is not valid JSON");
  }
  if (header.key !== canonicalKey(key)) fail("it was written for a different key");
  const { n, dim } = header;
  if (!Number.isInteger(n) || !Number.isInteger(dim) || n < 0 || dim < 1)
    fail(`bad sizes n=${n}, dim=${dim} in the header`);
  const payload = bytes.subarray(12 + headerLen);
  if (payload.length !== n * dim * 4 + n * 4)
    fail(
      `expected a payload of ${n * dim * 4 + n * 4} bytes (n=${n}, dim=${dim}), got ${payload.length}`,
    );
  if (sha256(payload) !== header.sha256) fail("checksum mismatch (the file is corrupt)");
  // Copy into fresh, aligned buffers (the file buffer's offset need not be 4-aligned).
  const features = new Float32Array(n * dim);
  new Uint8Array(features.buffer).set(payload.subarray(0, n * dim * 4));
  const labels = new Int32Array(n);
  new Uint8Array(labels.buffer).set(payload.subarray(n * dim * 4));
  return { features, labels, dim };
}

/** The cache key of an extraction: weights, dataset content, transform, pooling. */
async function cacheKey(
  backbone: Backbone,
  isModule: boolean,
  dataset: Dataset,
  options: ExtractOptions,
): Promise<FeatureCacheKey> {
  const cache = options.cache!;
  if (typeof cache.dir !== "string" || cache.dir === "")
    throw new ConfigError(`cache.dir: expected a directory path, got ${describeValue(cache.dir)}`);
  if (!isModule && !cache.modelKey)
    throw new ConfigError(
      "cache.modelKey: expected a key for the weights behind a function backbone (e.g. hashCheckpointFile(path)), got undefined",
    );
  if (options.transform && !options.transformKey)
    throw new ConfigError(
      "transformKey: expected a description of the transform (it is part of the cache key), got undefined",
    );
  const model = cache.modelKey ?? `weights:${hashModuleWeights(backbone as Module)}`;
  return {
    model,
    dataset: `${cache.datasetKey ?? ""}|${await datasetFingerprint(dataset)}`,
    transform: options.transform ? options.transformKey! : "none",
    pool: isModule ? (options.pool ?? "cls") : (options.pool ?? "function-default"),
  };
}

/** Feature caches in files, for extractFeaturesOn. */
const FILE_CACHE: FeatureCacheHost = {
  key: cacheKey,
  path: featureCachePath,
  read: readFeatureCache,
  write: writeFeatureCache,
};

/**
 * {@link extractFeatures} of `@sit/eval` under Node, plus `options.cache`: features stored in
 * `cache.dir` (atomically, checksummed) and reused while the weights, dataset, transform and
 * pooling are unchanged.
 */
export async function extractFeatures(
  backbone: Backbone,
  dataset: Dataset,
  options: ExtractOptions = {},
): Promise<ExtractedFeatures> {
  return extractFeaturesOn(FILE_CACHE, backbone, dataset, options);
}
