import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { fit } from "@sit/train/node";
import { afterAll, describe, expect, it } from "vitest";
import { GmmlSimclrRecipe } from "./recipe";

const tmp = mkdtempSync(join(tmpdir(), "sit-custom-recipe-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Two views of the same 4 random 16×16 RGB images (the second slightly perturbed). */
function batch(seed: number): { views: tf.Tensor4D[] } {
  const x = tf.randomNormal([4, 16, 16, 3], 0, 1, "float32", seed) as tf.Tensor4D;
  const y = tf.tidy(() => x.add(tf.randomNormal(x.shape, 0, 0.1, "float32", seed + 1)));
  return { views: [x, y as tf.Tensor4D] };
}

const make = (seed: number) =>
  new GmmlSimclrRecipe({
    vit: { imgSize: 16, patchSize: 4, embedDim: 32, depth: 1, numHeads: 2 },
    optim: { stepsPerEpoch: 2, batchSize: 4, warmupEpochs: 0 },
    seed,
  });

describe("custom recipe (GMML + transformer decoder + NT-Xent)", () => {
  it("trains 2 steps with @sit/train's fit, leak-free, and resumes from its checkpoint", async () => {
    const recipe = make(0);
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    const loader = () => [batch(1), batch(3)];
    const r = await fit(recipe, loader, {
      epochs: 1,
      sinks: [],
      checkpoint: { dir: join(tmp, "ck") },
      onStep: (e) => {
        losses.push(e.loss);
        expect(e.terms?.contrastive).toBeGreaterThan(0);
        expect(e.terms?.reconstruction).toBeGreaterThan(0);
        expect(e.loss).toBeCloseTo(e.terms!.contrastive + 5 * e.terms!.reconstruction, 4);
      },
    });
    expect(r).toMatchObject({ reason: "completed", steps: 2 });
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);

    // A recipe with another seed, restored from the checkpoint, holds the trained weights.
    const again = make(7);
    const r2 = await fit(again, loader, { epochs: 1, sinks: [], resume: join(tmp, "ck") });
    expect(r2.resumedFrom).toBeDefined();
    const a = recipe.student.stateDict()["vit.cls_token"].dataSync();
    const b = again.student.stateDict()["vit.cls_token"].dataSync();
    expect(Array.from(b)).toEqual(Array.from(a));
    recipe.dispose();
    again.dispose();
  });
});
