import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "@sit/core";
import { writeSafetensors } from "@sit/core/node";
import {
  BatchTransform,
  type NormalizeStats,
  RandomHorizontalFlip,
  RandomResizedCrop,
  ViewPipeline,
} from "@sit/data";
import { fineTune } from "@sit/eval";
import { LinearClassifier, SitClassifier } from "@sit/vit";
import type * as tf from "@tensorflow/tfjs";
import { openSplit } from "../features";
import { type CliIO, note, pct } from "../io";
import { backboneOf, evaluationTransform, inputSize } from "../model";
import { type EvalSourceOptions, appendResult, openEvalContext } from "./eval-common";

/** Options of {@link finetune} (defaults: DeiT's recipe where it applies, see @sit/eval's `fineTune`). */
export interface FinetuneCommandOptions extends EvalSourceOptions {
  epochs: number;
  batchSize: number;
  lr?: number;
  minLr?: number;
  warmupEpochs?: number;
  weightDecay?: number;
  labelSmoothing?: number;
  layerDecay?: number;
  /** Mixup 0.8 / CutMix 1.0 (DeiT). */
  mixup: boolean;
  /** RandAugment m9-mstd0.5 (DeiT). */
  randAugment: boolean;
  /** `linear` (DeiT: Linear on CLS) or `sit` (concat(CLS, mean patch) → MLP). */
  head: "linear" | "sit";
  /** RandomResizedCrop area range of the training images. */
  cropScale: [number, number];
  seed: number;
  trainLimit?: number;
  testLimit?: number;
  /** Keep the newest k epoch checkpoints (0 keeps all). */
  keepLast: number;
}

/** What {@link finetune} measured. */
export interface FinetuneCommandResult {
  source: string;
  step: number;
  last: { epoch: number; top1: number; top5: number };
  bestTest: { epoch: number; top1: number; top5: number };
  /** The last epoch's weights (backbone + head). */
  checkpoint: string;
  resultsFile: string;
}

/** Normalisation statistics with one entry per input channel (grey inputs take the first). */
function perChannel(
  stats: NormalizeStats | null,
  channels: 1 | 3,
): { mean: number[]; std: number[] } | undefined {
  if (!stats) return undefined;
  const pick = (v: readonly number[]) =>
    channels === 1 ? [v[0]] : v.length === 1 ? [v[0], v[0], v[0]] : [...v];
  return { mean: pick(stats.mean), std: pick(stats.std) };
}

/**
 * `sit finetune`: fine-tune the whole backbone with a classification head (DeiT-style: AdamW,
 * warm-up + cosine, label smoothing, stochastic depth, optional Mixup/CutMix and RandAugment).
 * Every epoch appends a JSON line to `finetune.jsonl` and writes the weights to
 * `finetune/checkpoint-epoch-NNNN.safetensors` (backbone `backbone.*`, head `head.*`, newest k kept).
 */
export async function finetune(
  options: FinetuneCommandOptions,
  io: CliIO,
): Promise<FinetuneCommandResult> {
  const ctx = await openEvalContext(options, io);
  try {
    const backbone = backboneOf(ctx.model, options.weights);
    const run = ctx.model.run;
    const size = inputSize(backbone);
    const train = openSplit(ctx.kind, "train", options.trainLimit);
    const test = openSplit(ctx.kind, "test", options.testLimit);
    const numClasses = Math.max(
      train.numClasses ?? 0,
      ...Array.from(train.labels ?? [0], (y) => y + 1),
    );
    const rng = Rng.seed(options.seed);
    const head =
      options.head === "sit"
        ? new SitClassifier(backbone.embedDim, numClasses, { rng })
        : new LinearClassifier(backbone.embedDim, numClasses, { rng });
    const trainTransform = new BatchTransform(
      "images",
      [
        new ViewPipeline(
          new RandomResizedCrop({ size, scale: options.cropScale, interpolation: "bicubic" }),
          [new RandomHorizontalFlip()],
        ),
      ],
      run.data.channels,
    );
    const dir = join(ctx.out, "finetune");
    mkdirSync(dir, { recursive: true });
    let checkpoint = "";
    const normalize = perChannel(run.stats, run.data.channels);
    const result = await fineTune(backbone, train, test, {
      epochs: options.epochs,
      batchSize: options.batchSize,
      ...definedNumbers({
        lr: options.lr,
        minLr: options.minLr,
        warmupEpochs: options.warmupEpochs,
        weightDecay: options.weightDecay,
        labelSmoothing: options.labelSmoothing,
        layerDecay: options.layerDecay,
      }),
      mixup: options.mixup ? {} : false,
      randAugment: options.randAugment ? {} : false,
      trainTransform,
      evalTransform: evaluationTransform(run, ctx.kind, size, false),
      ...(normalize ? { normalize } : {}),
      head,
      numClasses,
      seed: options.seed,
      onEpoch: (e) => {
        appendResult(ctx.out, "finetune.jsonl", { source: ctx.model.source, ...e });
        checkpoint = join(dir, `checkpoint-epoch-${String(e.epoch).padStart(4, "0")}.safetensors`);
        const tensors: Record<string, tf.Tensor> = {};
        for (const [k, v] of Object.entries(backbone.stateDict())) tensors[`backbone.${k}`] = v;
        for (const [k, v] of Object.entries(head.stateDict())) tensors[`head.${k}`] = v;
        writeSafetensors(checkpoint, tensors, {
          format: "sit-finetune",
          epoch: String(e.epoch),
          head: options.head,
          numClasses: String(numClasses),
          testTop1: String(e.testTop1),
        });
        pruneEpochCheckpoints(dir, options.keepLast);
        note(
          io,
          `  finetune epoch ${e.epoch}/${options.epochs}: loss ${e.trainLoss.toFixed(4)}, lr ${e.lr.toExponential(2)}, test top-1 ${pct(e.testTop1)}`,
        );
      },
    });
    const resultsFile = appendResult(ctx.out, "eval.jsonl", {
      command: "finetune",
      source: ctx.model.source,
      step: ctx.model.step,
      weights: options.weights,
      dataset: ctx.kind.name,
      head: options.head,
      epochs: options.epochs,
      last: result.last,
      bestTest: result.bestTest,
      checkpoint,
    });
    io.out(
      `fine-tuning: last epoch top-1 ${pct(result.last.top1)}, best test epoch ${result.bestTest.epoch} top-1 ${pct(result.bestTest.top1)} (${ctx.label})\n`,
    );
    head.dispose();
    return {
      source: ctx.model.source,
      step: ctx.model.step,
      last: result.last,
      bestTest: result.bestTest,
      checkpoint,
      resultsFile,
    };
  } finally {
    ctx.close();
  }
}

function definedNumbers(o: Record<string, number | undefined>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Record<
    string,
    number
  >;
}

function pruneEpochCheckpoints(dir: string, keep: number): void {
  if (keep <= 0) return;
  const files = readdirSync(dir)
    .filter((f) => /^checkpoint-epoch-\d+\.safetensors$/.test(f))
    .sort();
  for (const f of files.slice(0, Math.max(0, files.length - keep)))
    rmSync(join(dir, f), { force: true });
}
