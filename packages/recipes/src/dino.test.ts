import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng } from "@sit/core";
import { DataLoader, multiCropTransform } from "@sit/data";
import { loadBundledFashionMnist } from "@sit/data/node";
import { withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import type { TwoViewBatch } from "./batches";
import { createDINO, dinoLocalSize } from "./dino";

const backbone = { imgSize: 16, patchSize: 4, embedDim: 32, depth: 2, numHeads: 2 };
const head = { hidden: 48, bottleneck: 16, outDim: 64 };

function multiCrop(rng: Rng, b = 6, nLocal = 2): TwoViewBatch {
  const crop = (size: number) =>
    tf.tensor4d(rng.fillNormal(new Float32Array(b * size * size * 3)), [b, size, size, 3]);
  return { views: [crop(16), crop(16), ...Array.from({ length: nLocal }, () => crop(8))] };
}

describe("DINO recipe", () => {
  it("3 leak-free steps: every parameter moves except the frozen last layer, the centre follows the teacher", async () => {
    const recipe = createDINO({
      backbone,
      head,
      optim: { stepsPerEpoch: 2, epochs: 2, batchSize: 6, baseLr: 0.05, warmupEpochs: 0 },
    });
    const params = () => recipe.student.namedParameters().filter(([, v]) => v.trainable);
    const before = new Map(params().map(([n, v]) => [n, v.clone()] as const));
    const moved = (n: string, v: tf.Tensor) =>
      tf.tidy(() => tf.max(tf.abs(tf.sub(v, before.get(n)!))).dataSync()[0]) > 0;
    // How far the last layer's effective weight v/‖v‖ has turned since the start.
    const lastLayerTurn = () =>
      tf.tidy(() => {
        const v0 = before.get("head.last_layer.weight_v")!;
        const w0 = tf.div(v0, tf.sqrt(tf.sum(tf.square(v0), 0, true)));
        return tf.max(tf.abs(tf.sub(recipe.student.head.lastLayer.weight(), w0))).dataSync()[0];
      });
    const rng = Rng.seed(2);
    const counts: number[] = [];
    for (let step = 0; step < 3; step++) {
      if (step === 2) {
        // Steps 0 and 1 are the first epoch: the head's last layer has not turned (weight decay
        // only rescales v, which leaves v/‖v‖ unchanged); everything else has moved.
        const stillFrozen = params()
          .filter(([n, v]) => !moved(n, v))
          .map(([n]) => n);
        expect(stillFrozen).toEqual([]);
        expect(lastLayerTurn()).toBeLessThan(1e-6);
      }
      const batch = multiCrop(rng);
      const centerBefore = recipe.loss.center.clone();
      const r = await recipe.trainStep(batch, step);
      expect(Number.isFinite(r.loss)).toBe(true);
      expect(r.terms?.dino).toBe(r.loss);
      const changed = tf.tidy(
        () => tf.max(tf.abs(tf.sub(recipe.loss.center, centerBefore))).dataSync()[0],
      );
      expect(changed, "the centre moved").toBeGreaterThan(0);
      tf.dispose([centerBefore, ...batch.views]);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[2], "no tensor leaked by a step").toBe(counts[1]);
    // After the first epoch the last layer's direction changes too.
    expect(lastLayerTurn()).toBeGreaterThan(1e-6);
    tf.dispose([...before.values()]);

    // The centre is part of the state: a fresh recipe loaded from it has the same centre.
    const state = recipe.saveState();
    const again = createDINO({
      backbone,
      head,
      optim: { stepsPerEpoch: 2, epochs: 2, batchSize: 6 },
    });
    again.loadState(state);
    expect(Array.from(again.loss.center.dataSync())).toEqual(
      Array.from(recipe.loss.center.dataSync()),
    );
    const { "loss.center": _, ...withoutCenter } = state.tensors;
    expect(() => again.loadState({ ...state, tensors: withoutCenter })).toThrow(/loss centre/);
    again.dispose();
    recipe.dispose();
  });

  it("refuses bad batches and configs by name", async () => {
    const recipe = createDINO({ backbone, head, optim: { stepsPerEpoch: 1 } });
    const one = tf.zeros([2, 16, 16, 3]) as tf.Tensor4D;
    await expect(recipe.trainStep({ views: [one] }, 0)).rejects.toThrow(/views: expected 2 global/);
    const small = tf.zeros([2, 8, 8, 3]) as tf.Tensor4D;
    await expect(recipe.trainStep({ views: [one, small] }, 0)).rejects.toThrow(/two global crops/);
    tf.dispose([one, small]);
    recipe.dispose();
    expect(() => createDINO({ optim: { stepsPerEpoch: 1 }, centerMomentum: 2 })).toThrow(
      /dino\.centerMomentum/,
    );
    expect(() => createDINO({ optim: { stepsPerEpoch: 1 }, bogus: 1 } as never)).toThrow(
      ConfigError,
    );
  });

  it("lowers its loss on a toy batch of real Fashion-MNIST crops", async () => {
    const data = loadBundledFashionMnist(process.cwd(), "train");
    const recipe = createDINO({
      backbone: { imgSize: 28, patchSize: 7, inChans: 1, embedDim: 32, depth: 1, numHeads: 2 },
      head: { hidden: 48, bottleneck: 16, outDim: 32 },
      multiCrop: { nLocal: 2 },
      optim: { stepsPerEpoch: 30, epochs: 1, batchSize: 16, baseLr: 0.02, warmupEpochs: 0 },
      freezeLastLayerEpochs: 0,
      // A moving centre flattens the teacher's targets step by step, which raises the
      // cross-entropy's entropy part (DINO's loss is not monotone); with the centre held at 0 the
      // loss measures only how far the student is from the sharpened teacher.
      centerMomentum: 1,
    });
    expect(dinoLocalSize(recipe.config, 28, 7)).toBe(14);
    const loader = new DataLoader(data, {
      transform: multiCropTransform({
        globalSize: 28,
        localSize: 14,
        nLocal: 2,
        channels: 1,
        normalize: null,
        interpolation: "bilinear",
      }),
      batchSize: 16,
      seed: 0,
      dropLast: true,
    });
    const losses: number[] = [];
    await withBackend("wasm", async () => {
      const iterator = loader.epoch(0)[Symbol.asyncIterator]();
      const batch = (await iterator.next()).value as unknown as TwoViewBatch;
      await iterator.return?.();
      expect(batch.views.map((v) => v.shape[1])).toEqual([28, 28, 14, 14]);
      for (let step = 0; step < 30; step++) losses.push((await recipe.trainStep(batch, step)).loss);
      tf.dispose(batch.views);
    });
    await loader.close();
    recipe.dispose();
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-5)), losses.map((l) => l.toFixed(3)).join(" ")).toBeLessThan(
      0.8 * mean(losses.slice(0, 5)),
    );
  });
});
