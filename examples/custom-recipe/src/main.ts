// Train the custom recipe (recipe.ts) on the Fashion-MNIST subset bundled with SiT.js and compare
// the k-NN accuracy of its backbone before and after.
//   npm start -w @sit/example-custom-recipe -- [--steps 200] [--data DIR] [--backend wasm]
import { parseArgs } from "node:util";
import type { BackendName } from "@sit/core";
import { initBackend } from "@sit/core/node";
import { DataLoader, evalTransform, sitTwoViewTransform } from "@sit/data";
import { findBundledFashionMnist, loadFashionMnist } from "@sit/data/node";
import { knnEval } from "@sit/eval";
import { extractFeatures } from "@sit/eval/node";
import { fit } from "@sit/train/node";
import { GmmlSimclrRecipe } from "./recipe";

const { values } = parseArgs({
  options: {
    steps: { type: "string", default: "200" },
    batch: { type: "string", default: "64" },
    data: { type: "string" },
    backend: { type: "string", default: "auto" },
  },
});
await initBackend(values.backend as BackendName | "auto");
const dir = values.data ?? findBundledFashionMnist(process.cwd());
const [train, test] = [loadFashionMnist(dir, "train"), loadFashionMnist(dir, "test")];
const batchSize = Number(values.batch);
const stats = { mean: [0.286], std: [0.353] };
// Grayscale images become RGB (the network reconstructs 3 channels), 28 px, SiT's augmentations.
const loader = new DataLoader(train, {
  transform: sitTwoViewTransform({ size: 28, normalize: stats, interpolation: "bilinear" }),
  batchSize,
  dropLast: true,
});
const steps = Number(values.steps);
const stepsPerEpoch = loader.batchesPerEpoch;
const epochs = Math.ceil(steps / stepsPerEpoch);
// lr = baseLr · batch / 256, cosine over the run, no warm-up (a short run).
const recipe = new GmmlSimclrRecipe({
  vit: { imgSize: 28, patchSize: 4, embedDim: 96, depth: 4, numHeads: 3 },
  optim: { stepsPerEpoch, batchSize, epochs, warmupEpochs: 0, baseLr: 4e-3 },
});

async function knnTop1(): Promise<number> {
  const options = {
    pool: "cls" as const,
    transform: evalTransform({ size: 28, resize: 28, normalize: stats }),
  };
  const vit = recipe.student.vit;
  const [a, b] = [
    await extractFeatures(vit, train, options),
    await extractFeatures(vit, test, options),
  ];
  return knnEval(a, b, { ks: [20] })[0].top1;
}

const before = await knnTop1();
await fit(recipe, (e) => loader.epoch(e), { epochs, maxSteps: steps });
const after = await knnTop1();
console.log(
  `k-NN top-1 of the backbone (k = 20): ${(100 * before).toFixed(1)} % at initialisation → ${(100 * after).toFixed(1)} % after ${values.steps} steps`,
);
recipe.dispose();
