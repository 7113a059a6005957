import { FASHION_MNIST_CLASSES, parseIdx } from "@sit/data";
// The bundled Fashion-MNIST subset (data/fashion-mnist-subset): the same files `sit pretrain`
// reads as "fashion-mnist-bundled", served by Vite as static assets.
import testImagesUrl from "../../../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz?url";
import testLabelsUrl from "../../../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz?url";
import trainImagesUrl from "../../../data/fashion-mnist-subset/train-images-idx3-ubyte.gz?url";
import trainLabelsUrl from "../../../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz?url";
import type { ImageSet, TrainingData } from "./protocol";

/** Held-out images used as k-NN queries (the training images are the k-NN memory). */
export const HELD_OUT_IMAGES = 200;

/** Bytes of a gzipped file, inflated by the browser (DecompressionStream); plain bytes pass through. */
async function fetchMaybeGzip(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  // A server may already have inflated it (Content-Encoding: gzip): look at the gzip magic.
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function idxImageSet(imagesUrl: string, labelsUrl: string, name: string): Promise<ImageSet> {
  const [imageBytes, labelBytes] = await Promise.all([
    fetchMaybeGzip(imagesUrl),
    fetchMaybeGzip(labelsUrl),
  ]);
  const images = parseIdx(imageBytes, `${name} images`);
  const labels = parseIdx(labelBytes, `${name} labels`);
  const [count, height, width] = images.shape;
  return {
    images: images.data as Uint8Array,
    count,
    height,
    width,
    channels: 1,
    labels: Int32Array.from(labels.data as ArrayLike<number>),
    classNames: [...FASHION_MNIST_CLASSES],
  };
}

/** `n` images spread evenly over a set (so that every class of a class-ordered set shows). */
export function spreadSubset(set: ImageSet, n: number): ImageSet {
  if (set.count <= n) return set;
  const per = set.height * set.width * set.channels;
  const images = new Uint8Array(n * per);
  const labels = set.labels ? new Int32Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    const j = Math.floor((i * set.count) / n);
    images.set(set.images.subarray(j * per, (j + 1) * per), i * per);
    if (labels && set.labels) labels[i] = set.labels[j];
  }
  return { ...set, images, count: n, ...(labels ? { labels } : {}) };
}

/** The bundled subset: 6,000 training images; held out: 200 of the 1,000 test images, all classes. */
export async function loadBundledFashionMnist(): Promise<TrainingData> {
  const [train, test] = await Promise.all([
    idxImageSet(trainImagesUrl, trainLabelsUrl, "train"),
    idxImageSet(testImagesUrl, testLabelsUrl, "t10k"),
  ]);
  return { source: "fashion-mnist-bundled", train, heldOut: spreadSubset(test, HELD_OUT_IMAGES) };
}

/** Side of the stored copies of dropped images (the training crop resamples them to the input size). */
export const DROPPED_SIDE = 64;

/**
 * Decode the visitor's image files with the browser's own decoders (createImageBitmap), centre-
 * cropped to a square and resized to {@link DROPPED_SIDE} px on an OffscreenCanvas, RGB. A file's
 * parent folder becomes its class when the files come from more than one folder (an image-folder
 * layout), so that k-NN can be measured; otherwise the images are unlabelled. Files that do not
 * decode are skipped and counted.
 */
export async function decodeDroppedImages(
  files: readonly File[],
): Promise<{ data: TrainingData; skipped: string[] }> {
  const side = DROPPED_SIDE;
  const canvas = new OffscreenCanvas(side, side);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("this browser has no 2D OffscreenCanvas to decode images with");
  const pixels: Uint8Array[] = [];
  const folders: string[] = [];
  const skipped: string[] = [];
  for (const file of files) {
    let bitmap: ImageBitmap;
    try {
      bitmap = await createImageBitmap(file);
    } catch {
      skipped.push(file.name);
      continue;
    }
    const s = Math.min(bitmap.width, bitmap.height);
    ctx.clearRect(0, 0, side, side);
    ctx.drawImage(bitmap, (bitmap.width - s) / 2, (bitmap.height - s) / 2, s, s, 0, 0, side, side);
    bitmap.close();
    const rgba = ctx.getImageData(0, 0, side, side).data;
    const rgb = new Uint8Array(side * side * 3);
    for (let p = 0; p < side * side; p++) {
      rgb[3 * p] = rgba[4 * p];
      rgb[3 * p + 1] = rgba[4 * p + 1];
      rgb[3 * p + 2] = rgba[4 * p + 2];
    }
    pixels.push(rgb);
    const path = (file as File & { webkitRelativePath?: string }).webkitRelativePath || file.name;
    const parts = path.split("/");
    folders.push(parts.length > 1 ? parts[parts.length - 2] : "");
  }
  if (pixels.length < 4)
    throw new Error(
      `expected at least 4 images that the browser can decode, got ${pixels.length} (skipped: ${skipped.join(", ") || "none"})`,
    );
  const classNames = [...new Set(folders)].sort();
  const labelled = classNames.length > 1;
  const all: ImageSet = {
    images: concat(pixels),
    count: pixels.length,
    height: side,
    width: side,
    channels: 3,
    ...(labelled
      ? { labels: Int32Array.from(folders, (f) => classNames.indexOf(f)), classNames }
      : {}),
  };
  // Every fifth image is held out (k-NN queries and pictures); the rest train. Below 10 images
  // all of them do both, so that the pictures have images to show.
  const pick = (keep: (i: number) => boolean) => subset(all, keep);
  return {
    data: {
      source: "dropped",
      train: pick((i) => i % 5 !== 4 || all.count < 10),
      heldOut: pick((i) => i % 5 === 4 || all.count < 10),
    },
    skipped,
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function subset(set: ImageSet, keep: (i: number) => boolean): ImageSet {
  const per = set.height * set.width * set.channels;
  const idx = Array.from({ length: set.count }, (_, i) => i).filter(keep);
  const images = new Uint8Array(idx.length * per);
  idx.forEach((j, i) => {
    images.set(set.images.subarray(j * per, (j + 1) * per), i * per);
  });
  return {
    ...set,
    images,
    count: idx.length,
    ...(set.labels ? { labels: Int32Array.from(idx, (j) => set.labels![j]) } : {}),
  };
}
