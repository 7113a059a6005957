// What the worker computes besides training steps: reconstructions, CLS attention and k-NN
// accuracy, all from the library's own pieces (the recipe's masker and network, @sit/eval).
import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { ArrayDataset, type NormalizeStats, runEvalTransform } from "@sit/data";
import { attentionMaps, clsAttention, extractFeatures, inEvalMode, knnEval } from "@sit/eval";
import type { SitRecipe } from "@sit/recipes";
import type { FromWorker, ImageSet, PictureBatch } from "./protocol";

/** k of the k-NN vote (DINO's 20, as the quick start), fewer when the memory is smaller. */
export const KNN_K = 20;
/** Training images used as the k-NN memory (a spread subset: k-NN runs in the page every few steps). */
export const KNN_MEMORY = 1000;

export function datasetOf(set: ImageSet): ArrayDataset {
  return new ArrayDataset(
    set.images,
    set.height,
    set.width,
    set.channels,
    set.labels,
    set.classNames,
  );
}

/**
 * The evaluation transform `sit knn` uses for a run (@sit/data's): a plain resize for small
 * stored-at-size images (the bundled Fashion-MNIST), resize + centre crop otherwise.
 */
function evaluationTransform(set: ImageSet, size: number, stats: NormalizeStats | null) {
  return runEvalTransform(set, size, stats, set.height <= size && set.width <= size);
}

/** The first `n` held-out images through the evaluation transform (NHWC, normalised; caller disposes). */
export function pictureImages(
  set: ImageSet,
  n: number,
  size: number,
  stats: NormalizeStats | null,
) {
  const ds = datasetOf(set);
  const samples = Array.from({ length: Math.min(n, ds.length) }, (_, i) => ds.get(i));
  return evaluationTransform(set, size, stats).apply(samples, Rng.seed(0))[0];
}

// Reads are asynchronous: WebGPU has no synchronous read from the device.
async function picture(t: tf.Tensor): Promise<PictureBatch> {
  return { data: (await t.data()) as Float32Array, shape: t.shape as PictureBatch["shape"] };
}

/**
 * original | GMML-corrupted | reconstruction of `images` by the student, the corruption drawn by
 * the recipe's own masker with a fixed seed (the same blocks at every report, so that the pictures
 * show the network changing, not the masks).
 */
export async function reconstructions(
  recipe: SitRecipe,
  images: tf.Tensor4D,
  step: number,
  stats: NormalizeStats | null,
): Promise<Extract<FromWorker, { type: "reconstruction" }>> {
  const original = await picture(images);
  const { corrupted } = recipe.masker.apply(original, Rng.seed(1));
  const network = recipe.network("student");
  const rec = inEvalMode(network, () =>
    tf.tidy(() => {
      const x = tf.tensor4d(corrupted.data, corrupted.shape);
      return network.forward(x).reconstruction!;
    }),
  );
  try {
    return {
      type: "reconstruction",
      step,
      original,
      corrupted: { data: corrupted.data.slice(), shape: corrupted.shape },
      reconstruction: await picture(rec),
      stats: stats ? { mean: [...stats.mean], std: [...stats.std] } : null,
    };
  } finally {
    rec.dispose();
  }
}

/**
 * The CLS token's attention to each patch in the student's last block, averaged over heads, as
 * multiples of uniform attention (1/N), one map per image (what `sit attention` draws as "mean of
 * heads").
 */
export async function attentionReport(
  recipe: SitRecipe,
  images: tf.Tensor4D,
  step: number,
  stats: NormalizeStats | null,
): Promise<Extract<FromWorker, { type: "attention" }>> {
  const backbone = recipe.backbone("student");
  const block = backbone.depth - 1;
  const ratios = clsAttention(backbone, images, block);
  const shape = ratios.shape;
  const values = (await ratios.data()) as Float32Array;
  ratios.dispose();
  const heads = shape[1];
  return {
    type: "attention",
    step,
    images: await picture(images),
    stats: stats ? { mean: [...stats.mean], std: [...stats.std] } : null,
    // The last map of each image is the mean of its heads.
    maps: attentionMaps(values, shape).map((maps) => maps[heads]),
    grid: [backbone.grid[0], backbone.grid[1]],
    block,
    heads,
  };
}

/**
 * Weighted k-NN top-1 (@sit/eval's knnEval, DINO's protocol) of the student's CLS features: the
 * memory is `memory`, the queries `queries`. Undefined when the images have no labels.
 */
export async function knnTop1(
  recipe: SitRecipe,
  memory: ImageSet,
  queries: ImageSet,
  size: number,
  stats: NormalizeStats | null,
): Promise<{ top1: number; k: number; trainRows: number; testRows: number } | undefined> {
  if (!memory.labels || !queries.labels) return undefined;
  const backbone = recipe.backbone("student");
  const options = (set: ImageSet) => ({
    pool: "cls" as const,
    batchSize: 100,
    transform: evaluationTransform(set, size, stats),
  });
  const train = await extractFeatures(backbone, datasetOf(memory), options(memory));
  const test = await extractFeatures(backbone, datasetOf(queries), options(queries));
  const k = Math.min(KNN_K, train.labels.length);
  const [result] = knnEval(train, test, { ks: [k] });
  return { top1: result.top1, k, trainRows: train.labels.length, testRows: test.labels.length };
}
