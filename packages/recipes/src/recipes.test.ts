import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng } from "@sit/core";
import { corruptViews } from "@sit/gmml";
import { DataLoader, sitTwoViewTransform } from "@sit/data";
import { loadBundledFashionMnist } from "@sit/data/node";
import { fit, resumeFrom } from "@sit/train/node";
import { withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import type { TwoViewBatch } from "./batches";
import { createGmmlOnly } from "./gmml-only";
import { createMAE } from "./mae";
import { createMoCoV3 } from "./moco-v3";
import { createSiT } from "./sit";

const tiny = { imgSize: 16, patchSize: 4, embedDim: 32, depth: 2, numHeads: 2, dropPathRate: 0.1 };
const optim = { stepsPerEpoch: 10, epochs: 1, batchSize: 8, baseLr: 0.02, warmupEpochs: 0 };

function randomBatch(rng: Rng, b = 8, size = 16): TwoViewBatch {
  const view = () =>
    tf.tensor4d(rng.fillNormal(new Float32Array(b * size * size * 3)), [b, size, size, 3]);
  return { views: [view(), view()] };
}

const dispose = (b: TwoViewBatch) => tf.dispose(b.views);

describe("SiT recipe", () => {
  it("3 steps: every student parameter gets a finite gradient, the teacher none and exactly the EMA update; no leaks", () => {
    const recipe = createSiT({
      backbone: tiny,
      projection: { hidden: 48, outDim: 16 },
      optim,
      lambda: 5,
    });
    const rng = Rng.seed(1);
    const counts: number[] = [];
    // Biases followed by BatchNorm have zero gradient in exact arithmetic (BN removes the mean).
    const zeroByConstruction = new Set([
      "cls_head.mlp.0.bias",
      "cls_head.mlp.3.bias",
      "cls_head.mlp.6.bias",
    ]);
    for (let step = 0; step < 3; step++) {
      const batch = randomBatch(rng);
      const [x1, x2] = batch.views;
      const { corrupted, masks, tokenMasks } = corruptViews(recipe.masker, [x1, x2], rng);
      const teacherBefore = recipe.teacher.module
        .namedParameters()
        .map(([n, v]) => [n, v.clone()] as const);
      const hyper = recipe.hyperAt(step);
      const d = recipe.stepOnInputs(
        { clean: [x1, x2], corrupted: [corrupted[0], corrupted[1]], masks: [masks[0], masks[1]] },
        hyper,
        true,
      );
      expect(Number.isFinite(d.loss)).toBe(true);
      const names = recipe.student.namedParameters().map(([n]) => n);
      expect(Object.keys(d.grads).sort()).toEqual([...names].sort());
      for (const n of names) {
        const g = Array.from(d.grads[n].dataSync());
        expect(g.every(Number.isFinite), `${n} finite`).toBe(true);
        const maxAbs = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const short = n.replace(/^backbone\./, "");
        if (zeroByConstruction.has(short)) expect(maxAbs, `${n} ~ 0`).toBeLessThan(1e-5);
        else expect(maxAbs, `${n} non-zero`).toBeGreaterThan(1e-7);
      }
      // Teacher: not trainable, and moved by exactly θt ← m·θt + (1−m)·θs.
      const student = new Map(recipe.student.namedParameters());
      for (const [n, before] of teacherBefore) {
        const now = recipe.teacher.module.namedParameters().find(([k]) => k === n)![1];
        expect(now.trainable).toBe(false);
        const expected = tf.tidy(() =>
          before.mul(hyper.momentum).add(student.get(n)!.mul(1 - hyper.momentum)),
        );
        expect(
          tf.tidy(() => tf.max(tf.abs(now.sub(expected))).dataSync()[0]),
          n,
        ).toBeLessThan(1e-7);
        tf.dispose([expected, before]);
      }
      tf.dispose([
        d.studentProjection,
        d.teacherProjection,
        d.reconstructionImages,
        ...Object.values(d.grads),
        ...corrupted,
        ...masks,
        ...tokenMasks,
      ]);
      dispose(batch);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[2]).toBe(counts[1]);
    recipe.dispose();
  });

  it("trainStep's stacked GMML views give exactly the per-view inputs' losses", async () => {
    // trainStep corrupts both views as one stacked batch; stepOnInputs here takes the per-view
    // corruption of an identical recipe (same seed, same draws) as pairs.
    const config = { backbone: tiny, projection: { hidden: 48, outDim: 16 }, optim, lambda: 5 };
    const [stacked, paired] = [createSiT(config), createSiT(config)];
    const batch = randomBatch(Rng.seed(7));
    const r = await stacked.trainStep(batch, 0);
    const maskRng = (paired as unknown as { rngs: Record<string, Rng> }).rngs.mask;
    const { corrupted, masks, tokenMasks } = corruptViews(paired.masker, [...batch.views], maskRng);
    const [x1, x2] = batch.views;
    const d = paired.stepOnInputs(
      { clean: [x1, x2], corrupted: [corrupted[0], corrupted[1]], masks: [masks[0], masks[1]] },
      paired.hyperAt(0),
    );
    expect([r.loss, r.terms?.contrastive, r.terms?.reconstruction]).toEqual([
      d.loss,
      d.contrastive,
      d.reconstruction,
    ]);
    tf.dispose([...corrupted, ...masks, ...tokenMasks]);
    dispose(batch);
    stacked.dispose();
    paired.dispose();
  });

  it("trainStep is leak-free and reports the loss terms and schedule values", async () => {
    const recipe = createSiT({ backbone: tiny, projection: { hidden: 48, outDim: 16 }, optim });
    const rng = Rng.seed(2);
    const counts: number[] = [];
    for (let step = 0; step < 3; step++) {
      const batch = randomBatch(rng);
      const r = await recipe.trainStep(batch, step);
      dispose(batch);
      expect(Object.keys(r.terms ?? {})).toEqual(["contrastive", "reconstruction"]);
      expect(r.loss).toBeCloseTo((r.terms?.contrastive ?? 0) + (r.terms?.reconstruction ?? 0), 4);
      expect(r.schedule?.momentum).toBeCloseTo(recipe.schedules.momentum(step), 12);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[2]).toBe(counts[1]);
    recipe.dispose();
  });

  it("trainStep on wasm (kernel overrides, checkpointed blocks) keeps tensor count and bytes constant", async () => {
    await withBackend("wasm", async () => {
      const recipe = createSiT({
        backbone: { ...tiny, checkpointBlocks: true },
        projection: { hidden: 48, outDim: 16 },
        optim,
      });
      const rng = Rng.seed(4);
      const counts: number[] = [];
      const bytes: number[] = [];
      for (let step = 0; step < 4; step++) {
        const batch = randomBatch(rng);
        const r = await recipe.trainStep(batch, step);
        dispose(batch);
        expect(Number.isFinite(r.loss)).toBe(true);
        counts.push(tf.memory().numTensors);
        bytes.push(tf.memory().numBytes);
      }
      // Step 0 creates the optimiser state; after it nothing may grow.
      expect(counts.slice(1)).toEqual([counts[1], counts[1], counts[1]]);
      expect(bytes.slice(1)).toEqual([bytes[1], bytes[1], bytes[1]]);
      recipe.dispose();
    });
  });

  it("the network's forward skips the reconstruction head on request (the teacher's step)", () => {
    const sit = createSiT({ backbone: tiny, projection: { hidden: 16, outDim: 8 }, optim });
    const x = tf.tensor4d(
      Rng.seed(5).fillNormal(new Float32Array(2 * 16 * 16 * 3)),
      [2, 16, 16, 3],
    );
    const before = tf.memory().numTensors;
    const net = sit.teacherModule!; // no drop path: both calls see the same network
    const full = net.forward(x);
    const cut = net.forward(x, { reconstruction: false });
    expect(full.reconstruction?.shape).toEqual([2, 16, 16, 3]);
    expect(cut.reconstruction).toBeUndefined();
    expect(Array.from(cut.projection!.dataSync())).toEqual(Array.from(full.projection!.dataSync()));
    const outs = [full, cut].flatMap((o) => [
      ...Object.values(o.features),
      ...(o.projection ? [o.projection] : []),
      ...(o.reconstruction ? [o.reconstruction] : []),
    ]);
    tf.dispose(outs as tf.Tensor[]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    sit.dispose();
  });

  it("rejects an invalid config with an error naming the field", () => {
    expect(() => createSiT({ optim: { stepsPerEpoch: 0 } })).toThrow(ConfigError);
    expect(() => createSiT({ optim: { stepsPerEpoch: 0 } })).toThrow(/sit\.optim\.stepsPerEpoch/);
    expect(() => createSiT({ optim: { stepsPerEpoch: 1 }, gmml: { ratio: 1.5 } })).toThrow(
      /sit\.gmml\.ratio/,
    );
    expect(() =>
      createSiT({ optim: { stepsPerEpoch: 1 }, backbone: { preset: "huge" as "tiny" } }),
    ).toThrow(/sit\.backbone\.preset/);
    expect(() => createSiT({ optim: { stepsPerEpoch: 1 }, lamda: 5 } as never)).toThrow(/lamda/);
    // JSON's 1e999 is Infinity: the field is named, not the schedule's internal `base`.
    const inf = JSON.parse('{"stepsPerEpoch": 1, "baseLr": 1e999}');
    expect(() => createSiT({ optim: inf })).toThrow(/^sit\.optim\.baseLr: Number must be finite/);
    expect(() =>
      createSiT({ optim: { stepsPerEpoch: 1 }, lambda: Number.POSITIVE_INFINITY }),
    ).toThrow(/^sit\.lambda: Number must be finite/);
  });
});

describe("baseline recipes compose from the same blocks", () => {
  const cases = {
    gmml: () => createGmmlOnly({ backbone: tiny, optim }),
    mocov3: () =>
      createMoCoV3({
        backbone: tiny,
        projection: { hidden: 48, outDim: 16 },
        predictorHidden: 48,
        optim,
      }),
    mae: () =>
      createMAE({ backbone: tiny, decoder: { embedDim: 32, depth: 1, numHeads: 2 }, optim }),
  };
  for (const [name, make] of Object.entries(cases)) {
    it(`${name}: 3 finite, leak-free steps that change every trained parameter`, async () => {
      const recipe = make();
      // Trainable parameters only (MAE's decoder_pos_embed is a fixed sin-cos table).
      const before = recipe.student
        .namedParameters()
        .filter(([, v]) => v.trainable)
        .map(([n, v]) => [n, v.clone()] as const);
      const rng = Rng.seed(3);
      const counts: number[] = [];
      for (let step = 0; step < 3; step++) {
        const batch = randomBatch(rng);
        const r = await recipe.trainStep(batch, step);
        dispose(batch);
        expect(Number.isFinite(r.loss), `${name} loss`).toBe(true);
        counts.push(tf.memory().numTensors);
      }
      expect(counts[2]).toBe(counts[1]);
      const after = new Map(recipe.student.namedParameters());
      const unchanged = before
        .filter(([n, v]) => tf.tidy(() => tf.max(tf.abs(v.sub(after.get(n)!))).dataSync()[0]) === 0)
        .map(([n]) => n);
      expect(unchanged, `${name}: parameters that never moved`).toEqual([]);
      tf.dispose(before.map(([, v]) => v));
      recipe.dispose();
    });
  }
});

describe("SiT on real Fashion-MNIST", () => {
  it("30 steps lower the reconstruction loss clearly below the first steps' level", async () => {
    const data = loadBundledFashionMnist(process.cwd(), "train");
    const loader = new DataLoader(data, {
      transform: sitTwoViewTransform({ size: 28, interpolation: "bilinear" }),
      batchSize: 16,
      seed: 0,
      dropLast: true,
    });
    const recipe = createSiT({
      backbone: { imgSize: 28, patchSize: 4, embedDim: 48, depth: 2, numHeads: 3, dropPathRate: 0 },
      projection: { hidden: 64, outDim: 32 },
      optim: { stepsPerEpoch: 30, epochs: 1, batchSize: 16, baseLr: 0.08, warmupEpochs: 0 },
      lambda: 5,
    });
    const rec: number[] = [];
    // wasm: ~1.5 s a step on 2 busy cores (the cpu backend is ~15× slower for this model).
    await withBackend("wasm", async () => {
      for await (const batch of loader) {
        const r = await recipe.trainStep(batch as unknown as TwoViewBatch, rec.length);
        tf.dispose((batch as unknown as TwoViewBatch).views);
        rec.push(r.terms?.reconstruction ?? Number.NaN);
        if (rec.length === 30) break;
      }
    });
    recipe.dispose();
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(rec.slice(0, 5));
    const last = mean(rec.slice(-5));
    // Margin: the last five steps' mean must be at least 15% below the first five's (GMML noise in
    // the per-step loss is a few percent at this batch size).
    expect(last, `first ${first.toFixed(4)}, last ${last.toFixed(4)}`).toBeLessThan(0.85 * first);
  });
});

describe("SiT resume through @sit/train", () => {
  const batches = (epoch: number) => {
    const rng = Rng.seed(100 + epoch);
    return Array.from({ length: 3 }, () => randomBatch(rng));
  };
  const make = () =>
    createSiT({
      backbone: tiny,
      projection: { hidden: 48, outDim: 16 },
      optim: { ...optim, stepsPerEpoch: 3, epochs: 2 },
      seed: 7,
    });

  it("6 steps straight equal 3 + checkpoint + resume + 3, and a truncated checkpoint is refused by name", async () => {
    const straight: number[] = [];
    const a = make();
    await fit(a, batches, {
      maxSteps: 6,
      stepsPerEpoch: 3,
      sinks: [],
      handleSignals: false,
      onStep: (e) => void straight.push(e.loss),
    });
    a.dispose();

    const dir = mkdtempSync(join(tmpdir(), "sit-resume-"));
    const resumed: number[] = [];
    const b = make();
    await fit(b, batches, {
      maxSteps: 3,
      stepsPerEpoch: 3,
      sinks: [],
      handleSignals: false,
      checkpoint: { dir },
      onStep: (e) => void resumed.push(e.loss),
    });
    b.dispose();
    const c = createSiT({
      backbone: tiny,
      projection: { hidden: 48, outDim: 16 },
      optim: { ...optim, stepsPerEpoch: 3, epochs: 2 },
      seed: 99,
    });
    await fit(c, batches, {
      maxSteps: 6,
      stepsPerEpoch: 3,
      sinks: [],
      handleSignals: false,
      checkpoint: { dir },
      resume: true,
      onStep: (e) => void resumed.push(e.loss),
    });
    c.dispose();
    expect(resumed.length).toBe(6);
    for (let i = 0; i < 6; i++)
      expect(Math.abs(resumed[i] - straight[i]), `step ${i}`).toBeLessThan(
        1e-5 * Math.max(1, Math.abs(straight[i])),
      );

    const file = readdirSync(dir)
      .filter((f) => f.endsWith(".safetensors"))
      .sort()
      .at(-1) as string;
    const bytes = readFileSync(join(dir, file));
    writeFileSync(join(dir, file), bytes.subarray(0, bytes.length - 100));
    await expect(resumeFrom(join(dir, file))).rejects.toThrow(
      new RegExp(file.replace(/\./g, "\\.")),
    );
  });
});
