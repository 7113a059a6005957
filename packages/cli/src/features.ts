import type { Dataset } from "@sit/data";
import { type ExtractedFeatures, type KnnResult, type Pool, knnEval } from "@sit/eval";
import { extractFeatures } from "@sit/eval/node";
import type { VisionTransformer } from "@sit/vit";
import { type DatasetKind, type SplitRole, limitDataset } from "./datasets";
import { type CliIO, note } from "./io";
import { type RunInfo, evaluationTransform, inputSize } from "./model";

/** How features are extracted by the evaluation commands and the online monitor. */
export interface FeatureOptions {
  pool: Pool;
  /** Images per forward pass. */
  batchSize: number;
  /** At most this many images per split, evenly spaced over it (deterministic). */
  limit?: number;
  /** Cache folder for features (reused while weights, data, transform and pooling are unchanged). */
  cacheDir?: string;
}

/** A labelled split of the run's dataset, limited as asked. */
export function openSplit(kind: DatasetKind, role: SplitRole, limit?: number): Dataset {
  return limitDataset(kind.open(role), limit, true);
}

/** Frozen features of one split, with progress lines on the console. */
export async function splitFeatures(
  backbone: VisionTransformer,
  run: RunInfo,
  kind: DatasetKind,
  dataset: Dataset,
  label: string,
  options: FeatureOptions,
  io: CliIO,
): Promise<ExtractedFeatures> {
  const size = inputSize(backbone);
  const transform = evaluationTransform(run, kind, size);
  const t0 = Date.now();
  let lastNote = t0;
  const features = await extractFeatures(backbone, dataset, {
    pool: options.pool,
    batchSize: options.batchSize,
    transform,
    ...(options.cacheDir
      ? {
          transformKey: `eval:${kind.name}:${size}:${run.data.channels}:${JSON.stringify(run.stats)}:${kind.lowRes}`,
          cache: { dir: options.cacheDir, datasetKey: `${kind.name}:${label}` },
        }
      : {}),
    onProgress: (done, total) => {
      const now = Date.now();
      if (now - lastNote > 10_000) {
        lastNote = now;
        note(io, `  features ${label}: ${done}/${total}`);
      }
    },
    warn: (m) => note(io, `warning: ${m}`),
  });
  note(
    io,
    `  features ${label}: ${features.labels.length} × ${features.dim} (${features.cache === "hit" ? "cache" : `${((Date.now() - t0) / 1000).toFixed(1)} s`})`,
  );
  return features;
}

/** Weighted k-NN (DINO's protocol: cosine, T = 0.07) of a backbone's features, train split as memory. */
export async function knnOfBackbone(
  backbone: VisionTransformer,
  run: RunInfo,
  kind: DatasetKind,
  splits: { train: Dataset; test: Dataset },
  ks: number[],
  options: FeatureOptions & { temperature?: number },
  io: CliIO,
): Promise<{ results: KnnResult[]; trainRows: number; testRows: number }> {
  const train = await splitFeatures(backbone, run, kind, splits.train, "train", options, io);
  const test = await splitFeatures(backbone, run, kind, splits.test, "test", options, io);
  const usable = ks.map((k) => Math.min(k, train.labels.length));
  const results = knnEval(train, test, {
    ks: [...new Set(usable)],
    ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
  });
  return { results, trainRows: train.labels.length, testRows: test.labels.length };
}
