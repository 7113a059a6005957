// Learning curves (issue 17): one pretraining run per method, cut into segments that end at the
// budget's curve steps; the backbone at each cut is saved and evaluated on frozen features (k-NN
// and a linear probe). Segments resume from fit's checkpoints, so the curve costs one run, not
// one per point.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Dataset } from "@sit/data";
import {
  type FeatureSet,
  type ImageTransform,
  firstKPerClass,
  knnEval,
  linearProbe,
  selectRows,
} from "@sit/eval";
import { extractFeatures, hashCheckpointFile } from "@sit/eval/node";
import type { StageStore } from "@sit/example-shared";
import type { VisionTransformer } from "@sit/vit";
import type { Method } from "./methods";

/** One point of a learning curve: frozen-feature accuracies after `step` pretraining steps. */
export interface CurvePoint {
  step: number;
  knn?: number;
  /** Linear-probe top-1 by label fraction. */
  linear: Record<string, number>;
  /** Cumulative pretraining wall time to this step (seconds, as recorded by its segments). */
  pretrainSec?: number;
}

/** Stage names of a curve point (kept in one place: the report reads the same names). */
export const curveStage = {
  pretrain: (m: string, step: number) => `${m}/pretrain@${step}`,
  knn: (m: string, step: number) => `${m}/knn@${step}`,
  linear: (m: string, f: number, step: number) => `${m}/linear@${f}@${step}`,
};

/** Checks a curve against the run length: increasing positive steps ending at `steps`. */
export function validateCurve(curve: number[], steps: number): void {
  const ok =
    curve.length > 0 &&
    curve.every((s, i) => Number.isInteger(s) && s > 0 && (i === 0 || s > curve[i - 1])) &&
    curve[curve.length - 1] === steps;
  if (!ok)
    throw new Error(
      `budget.curve: expected increasing positive integers ending at steps (${steps}), got ${JSON.stringify(curve)}`,
    );
}

/** What the curve loop needs from the study (its pretraining and frozen-evaluation stages). */
export interface CurveHooks {
  /** Pretrain `method` up to `step` (resuming) and save its backbone to `weights`; undefined when interrupted. */
  pretrainTo(
    method: Exclude<Method, "random">,
    step: number,
    weights: string,
  ): Promise<{ elapsedSec: number } | undefined>;
  /** A backbone with the weights at `weights` loaded. */
  model(method: Method, weights: string): VisionTransformer;
  train: Dataset;
  test: Dataset;
  evalTransform: ImageTransform;
  /** The eval transform's part of the feature-cache key (the final evaluation's, to share its cache). */
  evalTransformKey: string;
  featureCacheDir: string;
  knnK: number;
  probeEpochs: number;
  seed: number;
  perClass(fraction: number): number;
  log(line: string): void;
  /** Runs the synchronous evaluations (k-NN, linear probe) where they can read tensors back. */
  onHost<T>(fn: () => T): Promise<T>;
}

/** The weights file of `method` after `step` steps, under the method's folder. */
export function curveWeights(methodDir: string, step: number): string {
  return join(methodDir, `backbone-step${step}.safetensors`);
}

/**
 * Run (or resume) every method's curve, step by step across methods (all methods reach 100 steps
 * before any goes on to 200, …), so that a run stopped early leaves comparable partial curves.
 * Returns false when a pretraining segment was interrupted.
 */
export async function runCurves(
  store: StageStore,
  methods: Exclude<Method, "random">[],
  curve: number[],
  fractions: number[],
  out: string,
  hooks: CurveHooks,
): Promise<boolean> {
  for (const step of curve) {
    for (const method of methods) {
      const weights = curveWeights(join(out, method), step);
      const seg = await store.run(curveStage.pretrain(method, step), async () => {
        hooks.log(`[${method}] pretraining to step ${step}`);
        return hooks.pretrainTo(method, step, weights);
      });
      if (!seg) return false;
      if (!existsSync(weights))
        throw new Error(
          `${weights}: missing, though stage ${curveStage.pretrain(method, step)} is recorded (delete that stage from results.json to redo it)`,
        );
      await frozenEval(store, method, step, fractions, weights, hooks);
    }
  }
  return true;
}

/**
 * The study's linear probe on frozen features: trained on the given rows of `train` (the first k
 * of each class), with a BatchNorm without affine before the linear layer (MAE's protocol); its
 * head is disposed, only the accuracies are kept. The table and the curves both use it.
 */
export function probeOnRows(
  train: FeatureSet,
  test: FeatureSet,
  rows: ArrayLike<number>,
  opts: { epochs: number; seed: number },
): ReturnType<typeof linearProbe> {
  const probe = linearProbe(selectRows(train, rows), test, {
    epochs: opts.epochs,
    batchNormNoAffine: true,
    numClasses: 10,
    seed: opts.seed,
  });
  probe.head.dispose();
  return probe;
}

async function frozenEval(
  store: StageStore,
  method: Method,
  step: number,
  fractions: number[],
  weights: string,
  h: CurveHooks,
): Promise<void> {
  const todo =
    store.get(curveStage.knn(method, step)) === undefined ||
    fractions.some((f) => store.get(curveStage.linear(method, f, step)) === undefined);
  if (!todo) return;
  const vit = h.model(method, weights);
  try {
    const opts = {
      pool: "cls" as const,
      transform: h.evalTransform,
      transformKey: h.evalTransformKey,
      // Keyed by the weights file (hashing the module would read it back synchronously).
      cache: { dir: h.featureCacheDir, modelKey: `file:${hashCheckpointFile(weights)}` },
      warn: h.log,
    };
    const trainF = await extractFeatures(vit, h.train, opts);
    const testF = await extractFeatures(vit, h.test, opts);
    await store.run(curveStage.knn(method, step), async () => {
      const [r] = await h.onHost(() =>
        knnEval(trainF, testF, { ks: [Math.min(h.knnK, h.train.length)], numClasses: 10 }),
      );
      h.log(`[${method}] step ${step}: k-NN top-1 ${(100 * r.top1).toFixed(2)} %`);
      return r.top1;
    });
    for (const f of fractions)
      await store.run(curveStage.linear(method, f, step), async () => {
        const rows = firstKPerClass(trainF.labels, h.perClass(f));
        const r = await h.onHost(() =>
          probeOnRows(trainF, testF, rows, { epochs: h.probeEpochs, seed: h.seed }),
        );
        h.log(
          `[${method}] step ${step}: linear probe, ${100 * f} % labels: ${(100 * r.last.top1).toFixed(2)} %`,
        );
        return r.last.top1;
      });
  } finally {
    vit.dispose();
  }
}

/** The recorded curve of `method` (points with at least one accuracy), for the report. */
export function collectCurve(
  store: StageStore,
  method: Method,
  curve: number[],
  fractions: number[],
): CurvePoint[] {
  const points: CurvePoint[] = [];
  let sec = 0;
  for (const step of curve) {
    const seg = store.stages[curveStage.pretrain(method, step)];
    if (seg) sec += seg.seconds;
    const p: CurvePoint = {
      step,
      knn: store.get<number>(curveStage.knn(method, step)),
      linear: {},
      ...(seg ? { pretrainSec: sec } : {}),
    };
    for (const f of fractions) {
      const v = store.get<number>(curveStage.linear(method, f, step));
      if (v !== undefined) p.linear[f] = v;
    }
    if (p.knn !== undefined || Object.keys(p.linear).length > 0) points.push(p);
  }
  return points;
}
