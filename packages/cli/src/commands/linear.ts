import { join, resolve } from "node:path";
import { confusionMatrix, linearProbe, predictClasses, selectRows } from "@sit/eval";
import { saveLinearHead, writeConfusionMatrixPng } from "@sit/eval/node";
import { openSplit, splitFeatures } from "../features";
import { type CliIO, UsageError, note, pct } from "../io";
import { backboneOf } from "../model";
import {
  type EvalFeatureOptions,
  type EvalSourceOptions,
  appendResult,
  featureOptions,
  openEvalContext,
} from "./eval-common";

/** Options of {@link linear}. */
export interface LinearCommandOptions extends EvalSourceOptions, EvalFeatureOptions {
  epochs: number;
  /** Peak learning rate (default per optimiser: SGD 0.1, AdamW 1e-3). */
  lr?: number;
  optimizer: "sgd" | "adamw";
  probeBatchSize: number;
  weightDecay: number;
  /** BatchNorm without affine before the linear layer (MAE's probe). */
  batchNorm: boolean;
  /** Hold out this fraction of the training features (evenly spaced rows) to select the epoch. */
  valFraction?: number;
  seed: number;
  /** PNG of the test split's confusion matrix under the final head (default `<out>/linear-confusion.png`). */
  confusionPng?: string;
}

/** What {@link linear} measured. */
export interface LinearCommandResult {
  source: string;
  step: number;
  last: { epoch: number; top1: number; top5: number };
  bestTest: { epoch: number; top1: number; top5: number };
  selected?: { epoch: number; valTop1: number; top1: number; top5: number };
  headPath: string;
  resultsFile: string;
  /** The confusion matrix picture of the test split. */
  confusionPath: string;
}

/**
 * `sit linear`: linear evaluation of frozen features — a linear classifier trained with
 * cross-entropy on the training split's features and measured on the test split after every epoch
 * (one JSON line per epoch in `linear.jsonl`). Reports the last epoch, the best test epoch
 * (optimistic), and with `--val-fraction` the epoch selected on held-out training rows.
 */
export async function linear(
  options: LinearCommandOptions,
  io: CliIO,
): Promise<LinearCommandResult> {
  const ctx = await openEvalContext(options, io);
  try {
    const backbone = backboneOf(ctx.model, options.weights);
    const fo = featureOptions(ctx, options);
    const trainAll = await splitFeatures(
      backbone,
      ctx.model.run,
      ctx.kind,
      openSplit(ctx.kind, "train", options.trainLimit),
      "train",
      fo,
      io,
    );
    const test = await splitFeatures(
      backbone,
      ctx.model.run,
      ctx.kind,
      openSplit(ctx.kind, "test", options.testLimit),
      "test",
      fo,
      io,
    );
    let train = trainAll;
    let validation: typeof trainAll | undefined;
    if (options.valFraction !== undefined) {
      const n = trainAll.labels.length;
      const every = Math.round(1 / options.valFraction);
      if (!(options.valFraction > 0 && options.valFraction < 0.5) || n < 2 * every)
        throw new UsageError(
          `--val-fraction: expected a fraction in (0, 0.5) leaving both parts non-empty, got ${options.valFraction} for ${n} training rows`,
        );
      const val: number[] = [];
      const rest: number[] = [];
      for (let i = 0; i < n; i++) (i % every === every - 1 ? val : rest).push(i);
      train = { ...selectRows(trainAll, rest), cache: trainAll.cache };
      validation = { ...selectRows(trainAll, val), cache: trainAll.cache };
    }
    const result = linearProbe(train, test, {
      epochs: options.epochs,
      ...(options.lr !== undefined ? { lr: options.lr } : {}),
      optimizer: options.optimizer,
      batchSize: options.probeBatchSize,
      weightDecay: options.weightDecay,
      batchNormNoAffine: options.batchNorm,
      seed: options.seed,
      ...(validation ? { validation } : {}),
      onEpoch: (e) => {
        appendResult(ctx.out, "linear.jsonl", { source: ctx.model.source, ...e });
        if (e.epoch === 1 || e.epoch % 10 === 0 || e.epoch === options.epochs)
          note(
            io,
            `  linear epoch ${e.epoch}/${options.epochs}: loss ${e.trainLoss.toFixed(4)}, test top-1 ${pct(e.testTop1)}${e.valTop1 !== undefined ? `, val top-1 ${pct(e.valTop1)}` : ""}`,
          );
      },
    });
    const headPath = join(ctx.out, "linear-head.safetensors");
    saveLinearHead(headPath, result.head);
    // Which classes the final head confuses, on the test split (class names from the dataset).
    const numClasses = result.head.numClasses;
    const predicted = predictClasses(result.head.predict(test.features, test.dim), numClasses);
    result.head.dispose();
    const cm = confusionMatrix(test.labels, predicted, numClasses);
    const confusionPath = resolve(options.confusionPng ?? join(ctx.out, "linear-confusion.png"));
    const classNames = openSplit(ctx.kind, "test", 1).classNames;
    const final = result.selected ?? result.last;
    await writeConfusionMatrixPng(confusionPath, cm, {
      title: `Linear probe on ${ctx.kind.name} (test, ${test.labels.length} images): top-1 ${pct(final.top1)}`,
      ...(classNames?.length === numClasses ? { classNames } : {}),
    });
    const resultsFile = appendResult(ctx.out, "eval.jsonl", {
      command: "linear",
      source: ctx.model.source,
      step: ctx.model.step,
      weights: options.weights,
      dataset: ctx.kind.name,
      pool: options.pool,
      optimizer: options.optimizer,
      epochs: options.epochs,
      last: result.last,
      bestTest: result.bestTest,
      ...(result.selected ? { selected: result.selected } : {}),
      head: headPath,
      confusion: confusionPath,
    });
    io.out(
      `linear probe: last epoch top-1 ${pct(result.last.top1)}, best test epoch ${result.bestTest.epoch} top-1 ${pct(result.bestTest.top1)}${result.selected ? `, selected on validation (epoch ${result.selected.epoch}) top-1 ${pct(result.selected.top1)}` : ""} (${ctx.label})\n`,
    );
    note(io, `[sit] confusion matrix of the test split: ${confusionPath}`);
    return {
      source: ctx.model.source,
      step: ctx.model.step,
      last: result.last,
      bestTest: result.bestTest,
      ...(result.selected ? { selected: result.selected } : {}),
      headPath,
      resultsFile,
      confusionPath,
    };
  } finally {
    ctx.close();
  }
}
