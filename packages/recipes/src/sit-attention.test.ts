import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { AttentionMasker } from "@sit/gmml";
import { describe, expect, it, vi } from "vitest";
import type { TwoViewBatch } from "./batches";
import { createSiT } from "./sit";

const backbone = { imgSize: 16, patchSize: 4, embedDim: 32, depth: 2, numHeads: 2 };
const optim = { stepsPerEpoch: 10, epochs: 1, batchSize: 4, baseLr: 0.02, warmupEpochs: 0 };

function batch(rng: Rng, b = 4): TwoViewBatch {
  const view = () => tf.tensor4d(rng.fillNormal(new Float32Array(b * 16 * 16 * 3)), [b, 16, 16, 3]);
  return { views: [view(), view()] };
}

describe("SiT with attention-guided masking", () => {
  it("masks by the teacher's attention with one teacher forward per step, leak-free", async () => {
    const recipe = createSiT({
      backbone,
      projection: { hidden: 32, outDim: 16 },
      optim,
      masking: "attention",
      attentionMask: { mode: "hint", ratio: 0.5, showMax: 0.25, showRatio: 0.125 },
    });
    expect(recipe.attentionMasker).toBeInstanceOf(AttentionMasker);
    expect(recipe.attentionMasker?.mode).toBe("hint");
    const teacherForward = vi.spyOn(recipe.teacher.module.backbone, "forward");
    const teacherNetwork = vi.spyOn(recipe.teacher.module, "forward");
    const maskViews = vi.spyOn(recipe.attentionMasker!, "maskViews");
    const rng = Rng.seed(1);
    const counts: number[] = [];
    for (let step = 0; step < 3; step++) {
      const b = batch(rng);
      const r = await recipe.trainStep(b, step);
      tf.dispose(b.views);
      expect(Number.isFinite(r.loss)).toBe(true);
      expect(r.terms?.reconstruction).toBeGreaterThan(0);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[2], "no tensor leaked by a step").toBe(counts[1]);
    expect(teacherForward, "one teacher backbone forward per step").toHaveBeenCalledTimes(3);
    expect(teacherNetwork, "no second teacher forward through the network").not.toHaveBeenCalled();
    expect(teacherForward.mock.calls[0][1]).toMatchObject({ attentions: "last" });
    // The masks were drawn from the teacher's scores: 16 tokens, 8 chosen, 2 revealed again.
    const scores = maskViews.mock.calls[0][1];
    expect(scores.map((s) => s.shape)).toEqual([
      [4, 16],
      [4, 16],
    ]);
    recipe.dispose();
  });

  it("scores are the teacher's last-block CLS attention averaged over heads", () => {
    const recipe = createSiT({
      backbone,
      projection: { hidden: 32, outDim: 16 },
      optim,
      masking: "attention",
    });
    const rng = Rng.seed(3);
    const b = batch(rng, 2);
    const { projection, scores } = recipe.teacherWithScores([b.views[0], b.views[1]]);
    const f = recipe.teacher.module.backbone.forward(b.views[0], { attentions: true });
    const att = f.attentions![1].arraySync() as number[][][][];
    const expected = att.map((img) =>
      Array.from({ length: 16 }, (_, t) => (img[0][0][t + 1] + img[1][0][t + 1]) / 2),
    );
    const got = scores[0].arraySync();
    for (let i = 0; i < 2; i++)
      for (let t = 0; t < 16; t++) expect(got[i][t]).toBeCloseTo(expected[i][t], 5);
    expect(projection.shape).toEqual([4, 16]);
    tf.dispose([projection, ...scores, ...b.views, f as never]);
    recipe.dispose();
  });
});
