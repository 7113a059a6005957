import { type FewShotStats, fewShot, knnEval } from "@sit/eval";
import { openSplit, splitFeatures } from "../features";
import { type CliIO, pct } from "../io";
import { backboneOf } from "../model";
import {
  type EvalFeatureOptions,
  type EvalSourceOptions,
  appendResult,
  featureOptions,
  openEvalContext,
} from "./eval-common";

/** Options of {@link knn}. */
export interface KnnCommandOptions extends EvalSourceOptions, EvalFeatureOptions {
  /** Neighbour counts (DINO: 20; default 10, 20, 100, 200). */
  ks: number[];
  /** Vote temperature (DINO: 0.07). */
  temperature: number;
}

/** What {@link knn} measured (accuracies are fractions). */
export interface KnnCommandResult {
  source: string;
  step: number;
  label: string;
  results: { k: number; top1: number; top5: number }[];
  trainRows: number;
  testRows: number;
  resultsFile: string;
}

/**
 * `sit knn`: weighted k-NN classification of frozen features (DINO's protocol, our choice since
 * SiT publishes none: cosine similarity, the k nearest training images vote with weight
 * exp(sim / T)); the labelled training split is the memory, the test split is classified.
 */
export async function knn(options: KnnCommandOptions, io: CliIO): Promise<KnnCommandResult> {
  const ctx = await openEvalContext(options, io);
  try {
    const backbone = backboneOf(ctx.model, options.weights);
    const train = openSplit(ctx.kind, "train", options.trainLimit);
    const test = openSplit(ctx.kind, "test", options.testLimit);
    const fo = featureOptions(ctx, options);
    const trainF = await splitFeatures(backbone, ctx.model.run, ctx.kind, train, "train", fo, io);
    const testF = await splitFeatures(backbone, ctx.model.run, ctx.kind, test, "test", fo, io);
    const ks = [...new Set(options.ks.map((k) => Math.min(k, trainF.labels.length)))];
    const results = knnEval(trainF, testF, { ks, temperature: options.temperature }).map((r) => ({
      k: r.k,
      top1: r.top1,
      top5: r.top5,
    }));
    const record = {
      command: "knn",
      source: ctx.model.source,
      step: ctx.model.step,
      weights: options.weights,
      dataset: ctx.kind.name,
      pool: options.pool,
      temperature: options.temperature,
      trainRows: trainF.labels.length,
      testRows: testF.labels.length,
      results,
    };
    const resultsFile = appendResult(ctx.out, "eval.jsonl", record);
    for (const r of results)
      io.out(`k-NN k=${r.k}: top-1 ${pct(r.top1)}, top-5 ${pct(r.top5)} (${ctx.label})\n`);
    return {
      source: ctx.model.source,
      step: ctx.model.step,
      label: ctx.label,
      results,
      trainRows: record.trainRows,
      testRows: record.testRows,
      resultsFile,
    };
  } finally {
    ctx.close();
  }
}

/** Options of {@link fewshot}. */
export interface FewShotCommandOptions extends EvalSourceOptions, EvalFeatureOptions {
  ways: number;
  /** One or more K (e.g. 1 and 5). */
  shots: number[];
  queries: number;
  episodes: number;
  seed: number;
  /** Split the episodes are drawn from (default test). */
  split: "train" | "test";
}

/** What {@link fewshot} measured. */
export interface FewShotCommandResult {
  source: string;
  step: number;
  results: { shots: number; classifier: string; mean: number; ci95: number }[];
  resultsFile: string;
}

/**
 * `sit fewshot`: N-way K-shot episodes on frozen features of one split (nearest prototype and
 * logistic regression on the same episodes), mean accuracy ± 95 % confidence half-width.
 */
export async function fewshot(
  options: FewShotCommandOptions,
  io: CliIO,
): Promise<FewShotCommandResult> {
  const ctx = await openEvalContext(options, io);
  try {
    const backbone = backboneOf(ctx.model, options.weights);
    const limit = options.split === "test" ? options.testLimit : options.trainLimit;
    const data = openSplit(ctx.kind, options.split, limit);
    const fo = featureOptions(ctx, options);
    const features = await splitFeatures(
      backbone,
      ctx.model.run,
      ctx.kind,
      data,
      options.split,
      fo,
      io,
    );
    const results: FewShotCommandResult["results"] = [];
    for (const shots of options.shots) {
      const stats: FewShotStats[] = fewShot(features, {
        ways: options.ways,
        shots,
        queries: options.queries,
        episodes: options.episodes,
        seed: options.seed,
      });
      for (const s of stats) {
        results.push({ shots, classifier: s.classifier, mean: s.mean, ci95: s.ci95 });
        io.out(
          `${options.ways}-way ${shots}-shot ${s.classifier}: ${pct(s.mean)} ± ${pct(s.ci95)} (${options.episodes} episodes, ${ctx.label})\n`,
        );
      }
    }
    const resultsFile = appendResult(ctx.out, "eval.jsonl", {
      command: "fewshot",
      source: ctx.model.source,
      step: ctx.model.step,
      weights: options.weights,
      dataset: ctx.kind.name,
      split: options.split,
      pool: options.pool,
      ways: options.ways,
      queries: options.queries,
      episodes: options.episodes,
      seed: options.seed,
      results,
    });
    return { source: ctx.model.source, step: ctx.model.step, results, resultsFile };
  } finally {
    ctx.close();
  }
}
