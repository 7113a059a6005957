import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { IOError, Rng } from "@sit/core";
import { fit } from "@sit/train/node";
import { describe, expect, it } from "vitest";
import type { TwoViewBatch } from "./batches";
import { loadBackbone } from "./load-backbone";
import { createMoCoV3 } from "./moco-v3";
import { createSiT } from "./sit";

const tiny = { imgSize: 16, patchSize: 4, embedDim: 32, depth: 2, numHeads: 2 };
const optim = { stepsPerEpoch: 2, epochs: 1, batchSize: 4, baseLr: 0.02, warmupEpochs: 0 };

function batches(epoch: number): TwoViewBatch[] {
  const rng = Rng.seed(10 + epoch);
  const view = () => tf.tensor4d(rng.fillNormal(new Float32Array(4 * 16 * 16 * 3)), [4, 16, 16, 3]);
  return Array.from({ length: 2 }, () => ({
    views: [view(), view()] as [tf.Tensor4D, tf.Tensor4D],
  }));
}

/** The CLS features of a fixed batch through a backbone. */
async function features(backbone: {
  forward(x: tf.Tensor): { cls: tf.Tensor };
}): Promise<Float32Array> {
  const x = tf.tensor4d(Rng.seed(5).fillNormal(new Float32Array(2 * 16 * 16 * 3)), [2, 16, 16, 3]);
  const cls = tf.tidy(() => backbone.forward(x).cls);
  const out = (await cls.data()) as Float32Array;
  tf.dispose([x, cls]);
  return out;
}

describe("loadBackbone", () => {
  it("rebuilds the trained backbone (student or teacher) from a run folder, its checkpoints/ or a file", async () => {
    const run = mkdtempSync(join(tmpdir(), "sit-backbone-"));
    const recipe = createSiT({
      backbone: tiny,
      projection: { hidden: 32, outDim: 16 },
      optim,
      seed: 3,
    });
    await fit(recipe, batches, {
      maxSteps: 2,
      stepsPerEpoch: 2,
      sinks: [],
      handleSignals: false,
      checkpoint: { dir: join(run, "checkpoints") },
    });
    const trained = await features(recipe.backbone("student"));
    const teacher = await features(recipe.backbone("teacher"));
    const untrained = createSiT({
      backbone: tiny,
      projection: { hidden: 32, outDim: 16 },
      optim,
      seed: 3,
    });
    const initial = await features(untrained.backbone());
    untrained.dispose();
    recipe.dispose();

    const before = tf.memory().numTensors;
    for (const path of [run, join(run, "checkpoints")]) {
      const loaded = await loadBackbone(path, { onWarning: () => {} });
      expect(loaded.recipe.name).toBe("sit");
      expect(loaded.step).toBe(2);
      expect(loaded.backbone.embedDim).toBe(32);
      expect(Array.from(await features(loaded.backbone))).toEqual(Array.from(trained));
      expect(Array.from(await features(loaded.backbone))).not.toEqual(Array.from(initial));
      const file = loaded.source;
      loaded.dispose();
      const t = await loadBackbone(file, { weights: "teacher" });
      expect(Array.from(await features(t.backbone))).toEqual(Array.from(teacher));
      t.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("works for any built-in recipe (MoCo v3's backbone sits inside its encoder)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-backbone-moco-"));
    const recipe = createMoCoV3({
      backbone: tiny,
      projection: { hidden: 32, outDim: 16 },
      predictorHidden: 32,
      optim,
      seed: 4,
    });
    await fit(recipe, batches, {
      maxSteps: 1,
      stepsPerEpoch: 2,
      sinks: [],
      handleSignals: false,
      checkpoint: { dir },
    });
    const trained = await features(recipe.backbone());
    recipe.dispose();
    const loaded = await loadBackbone(dir);
    expect(loaded.recipe.name).toBe("mocov3");
    expect(Array.from(await features(loaded.backbone))).toEqual(Array.from(trained));
    loaded.dispose();
  });

  it("names the path when there is nothing to load", async () => {
    const empty = mkdtempSync(join(tmpdir(), "sit-backbone-none-"));
    await expect(loadBackbone(join(empty, "missing"))).rejects.toThrow(
      /path: expected a checkpoint file or a run folder, got .*missing \(not found\)/,
    );
    mkdirSync(join(empty, "checkpoints"));
    await expect(loadBackbone(empty)).rejects.toThrow(IOError);
    await expect(loadBackbone(empty)).rejects.toThrow(/holds no checkpoint/);
    writeFileSync(join(empty, "bogus.safetensors"), "not a checkpoint");
    await expect(loadBackbone(join(empty, "bogus.safetensors"))).rejects.toThrow(
      /bogus\.safetensors/,
    );
    await expect(loadBackbone("")).rejects.toThrow(
      /path: expected a checkpoint file or a run folder, got ""/,
    );
  });
});
