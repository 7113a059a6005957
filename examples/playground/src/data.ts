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
  return pick(
    set,
    Array.from({ length: n }, (_, i) => Math.floor((i * set.count) / n)),
  );
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
  const per = side * side * 3;
  // Room for every file; the images that decode are written back to back into it.
  const images = new Uint8Array(files.length * per);
  let count = 0;
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
    const rgb = images.subarray(count * per, (count + 1) * per);
    for (let p = 0; p < side * side; p++) {
      rgb[3 * p] = rgba[4 * p];
      rgb[3 * p + 1] = rgba[4 * p + 1];
      rgb[3 * p + 2] = rgba[4 * p + 2];
    }
    count++;
    const path = (file as File & { webkitRelativePath?: string }).webkitRelativePath || file.name;
    const parts = path.split("/");
    folders.push(parts.length > 1 ? parts[parts.length - 2] : "");
  }
  if (count < 4)
    throw new Error(
      `expected at least 4 images that the browser can decode, got ${count} (skipped: ${skipped.join(", ") || "none"})`,
    );
  const classNames = [...new Set(folders)].sort();
  const labelled = classNames.length > 1;
  const all: ImageSet = {
    images: images.subarray(0, count * per),
    count,
    height: side,
    width: side,
    channels: 3,
    ...(labelled
      ? { labels: Int32Array.from(folders, (f) => classNames.indexOf(f)), classNames }
      : {}),
  };
  // Every fifth image is held out (k-NN queries and pictures); the rest train. Below 10 images
  // all of them do both, so that the pictures have images to show.
  const where = (keep: (i: number) => boolean) =>
    pick(all, Array.from({ length: all.count }, (_, i) => i).filter(keep));
  return {
    data: {
      source: "dropped",
      train: where((i) => i % 5 !== 4 || all.count < 10),
      heldOut: where((i) => i % 5 === 4 || all.count < 10),
    },
    skipped,
  };
}

/** The images of `set` at `indices`, in that order (copied), with their labels. */
function pick(set: ImageSet, indices: readonly number[]): ImageSet {
  const per = set.height * set.width * set.channels;
  const images = new Uint8Array(indices.length * per);
  indices.forEach((j, i) => {
    images.set(set.images.subarray(j * per, (j + 1) * per), i * per);
  });
  return {
    ...set,
    images,
    count: indices.length,
    ...(set.labels ? { labels: Int32Array.from(indices, (j) => set.labels![j]) } : {}),
  };
}
