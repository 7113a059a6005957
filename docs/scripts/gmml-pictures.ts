// Pictures of masks for docs/concepts.md: real Fashion-MNIST images (the subset bundled in
// data/fashion-mnist-subset) through each masking strategy of @sit/gmml, drawn with writeGmmlGrid
// (rows: original | mask | corrupted). Deterministic (fixed seeds), so docs/docs.test.ts checks
// that the committed PNGs are what this script draws.
//   npx tsx docs/scripts/gmml-pictures.ts [outDir]   (default docs/images)
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "@sit/core";
import { DATASET_STATS } from "@sit/data";
import { loadBundledFashionMnist } from "@sit/data/node";
import { BlockwiseMasker, GmmlMasker, type MaskingStrategy, RandomTokenMasker } from "@sit/gmml";
import { writeGmmlGrid } from "@sit/gmml/node";

/** The pictures: file name → masking strategy (28 px images, patch 4 where a patch size matters). */
export const PICTURES: Record<string, () => MaskingStrategy> = {
  // SiT v3's corruption as configured by default: zeros fill, ratio 0.5, and with probability 0.5
  // blocks pasted from another image of the batch instead.
  "gmml-sit-default.png": () => new GmmlMasker({ ratio: 0.5, fill: "zeros" }),
  // The same blocks filled with Gaussian noise (the GMML repository's default), no pasting.
  "gmml-noise.png": () => new GmmlMasker({ ratio: 0.5, fill: "noise", replaceProb: 0 }),
  // Blocks aligned to the 4-pixel patch grid: GMML's "groups of tokens".
  "gmml-patch-aligned.png": () =>
    new GmmlMasker({ ratio: 0.5, fill: "zeros", align: 4, replaceProb: 0 }),
  // For comparison: MAE's 75 % random tokens and BEiT's block-wise token masks.
  "mae-random-tokens.png": () => new RandomTokenMasker({ ratio: 0.75, patchSize: 4 }),
  "beit-blockwise.png": () => new BlockwiseMasker({ patchSize: 4 }),
};

/** Draw every picture of {@link PICTURES} into `dir`; returns the paths written. */
export function writeGmmlPictures(dir: string, repoRoot: string): string[] {
  const ds = loadBundledFashionMnist(repoRoot, "train");
  const { mean, std } = DATASET_STATS["fashion-mnist"];
  // One image of each of the first six classes, normalised as the models see them.
  const picks: number[] = [];
  for (let c = 0; picks.length < 6; c++) picks.push(ds.labels!.indexOf(c));
  const data = new Float32Array(6 * 28 * 28);
  picks.forEach((index, i) => {
    const { image } = ds.get(index);
    for (let p = 0; p < 28 * 28; p++) data[i * 784 + p] = (image[p] / 255 - mean[0]) / std[0];
  });
  const images = { data, shape: [6, 28, 28, 1] as [number, number, number, number] };
  return Object.entries(PICTURES).map(([file, make]) => {
    const r = make().apply(images, Rng.seed(1));
    const path = join(dir, file);
    writeGmmlGrid(path, images, r.pixelMask, r.corrupted, { mean: mean[0], std: std[0], scale: 4 });
    return path;
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  for (const p of writeGmmlPictures(process.argv[2] ?? join(root, "docs", "images"), root))
    console.log(p);
}
