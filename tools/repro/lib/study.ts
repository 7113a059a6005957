import { copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { initBackend } from "@sit/core/node";
import {
  BatchTransform,
  DATASET_STATS,
  DataLoader,
  type Dataset,
  RandomHorizontalFlip,
  RandomResizedCrop,
  SubsetDataset,
  ViewPipeline,
  evalTransform,
  multiCropTransform,
  sitTwoViewTransform,
} from "@sit/data";
import { loadFashionMnist } from "@sit/data/node";
import { firstKPerClass, knnEval } from "@sit/eval";
import { extractFeatures, hashCheckpointFile } from "@sit/eval/node";
import {
  StageStore,
  fineTuneStage,
  loadWeights,
  pretrain,
  saveWeightsAsync,
} from "@sit/example-shared";
import { VisionTransformer } from "@sit/vit";
import {
  type CurvePoint,
  collectCurve,
  curveWeights,
  probeOnRows,
  runCurves,
  validateCurve,
} from "./curves";
import { METHODS, type Method, type ModelBudget, STUDY_DINO, createMethod } from "./methods";

/** Everything that defines a study run (its fingerprint: results of another budget are not mixed in). */
export interface StudyBudget extends ModelBudget {
  methods: Method[];
  /** Pretrain on the first N training images (all when undefined). */
  pretrainImages?: number;
  /** Evaluate on the first N test images (all when undefined). */
  testImages?: number;
  /** Label fractions for the linear probe and fine-tuning (first-k-per-class subsets). */
  fractions: number[];
  knnK: number;
  probeEpochs: number;
  /** Fine-tuning epochs with all labels, and with a fraction < 1 of them. */
  finetuneEpochs: number;
  fewshotEpochs: number;
  finetuneBatch: number;
  /**
   * Fine-tuning's peak learning rate (default DeiT's 5e-4 · batch / 512, made for 300 epochs) and
   * warm-up epochs (default 5, at most epochs − 1). Short CPU runs need a larger rate and a short warm-up.
   */
  finetuneLr?: number;
  finetuneWarmup?: number;
  /** Smallest area fraction of fine-tuning's random resized crop (default 0.8: mild, for a few epochs). */
  finetuneCropScale?: number;
  /** Which backbone is evaluated where a method has an EMA teacher. */
  from: "student" | "teacher";
  /**
   * Learning curve: the steps (increasing, the last = `steps`) at which each method's backbone is
   * saved and evaluated on frozen features (k-NN and linear probes at `curveFractions`). With a
   * curve, `methods` is not part of the results file's fingerprint: methods can be added later.
   */
  curve?: number[];
  curveFractions?: number[];
}

/** Accuracies of one method (fractions in [0, 1]); keys of `linear`/`finetune` are label fractions. */
export interface MethodResults {
  pretrain?: { steps: number; elapsedSec: number; lastLoss?: number; meanStepMs?: number };
  knn?: number;
  linear: Record<string, number>;
  finetune: Record<string, number>;
  /** Frozen-feature accuracies along pretraining (budgets with a curve). */
  curve?: CurvePoint[];
}

const STATS = DATASET_STATS["fashion-mnist"];
const NORMALIZE = { mean: [...STATS.mean], std: [...STATS.std] };

function firstN(ds: Dataset, n: number | undefined): Dataset {
  if (n === undefined || n >= ds.length) return ds;
  return new SubsetDataset(
    ds,
    Int32Array.from({ length: n }, (_, i) => i),
  );
}

/**
 * Run `fn` where tensors can be read back synchronously: k-NN and the linear probe do, and WebGPU
 * under Node cannot (no OffscreenCanvas), so on webgpu they run on wasm (their inputs are host
 * arrays: the features were read back asynchronously).
 */
export async function onHostBackend<T>(fn: () => T): Promise<T> {
  const previous = tf.getBackend();
  if (previous !== "webgpu") return fn();
  await initBackend("wasm", { log: false });
  try {
    return fn();
  } finally {
    await tf.setBackend(previous);
  }
}

/** Label fraction → the number of images per class kept (Fashion-MNIST is balanced: 10 classes). */
export function perClass(train: Dataset, fraction: number): number {
  return Math.max(1, Math.round((fraction * train.length) / 10));
}

/** The study's images and its stage store (`out/results.json`, created when absent). */
export function openStudy(
  budget: StudyBudget,
  options: { data: string; out: string },
): { train: Dataset; test: Dataset; store: StageStore } {
  const train = firstN(loadFashionMnist(options.data, "train"), budget.pretrainImages);
  const test = firstN(loadFashionMnist(options.data, "test"), budget.testImages);
  // Results are keyed by method, so a curve study's file accepts methods added later.
  const fingerprint = budget.curve ? { ...budget, methods: undefined } : budget;
  const store = new StageStore(join(options.out, "results.json"), fingerprint, {
    data: { train: train.length, test: test.length },
  });
  return { train, test, store };
}

/**
 * Run (or resume) the study: for every method, pretrain on the training images (labels unused),
 * then k-NN, linear probes and fine-tuning at each label fraction. Every finished stage is
 * recorded in `out/results.json`; pretraining resumes from its checkpoints.
 */
export async function runStudy(
  budget: StudyBudget,
  options: { data: string; out: string; quiet?: boolean; log?: (line: string) => void },
): Promise<StageStore> {
  const log = options.log ?? ((l: string) => console.log(l));
  const { train, test, store } = openStudy(budget, options);
  const size = budget.imgSize;
  const evalT = evalTransform({ size, resize: size, normalize: STATS, channels: 1 });
  // Random resized crop + flip; mild by default, as the CPU budgets fine-tune for a few epochs only.
  const ftTrain = new BatchTransform(
    "images",
    [
      new ViewPipeline(
        new RandomResizedCrop({ size, scale: [budget.finetuneCropScale ?? 0.8, 1] }),
        [new RandomHorizontalFlip()],
      ),
    ],
    1,
  );

  // Pretrain `method` up to `maxSteps` (resuming from its checkpoints; the schedules span
  // `budget.steps`) and save the evaluated backbone to `weights`.
  const pretrainTo = async (
    method: Exclude<Method, "random">,
    maxSteps: number,
    weights: string,
  ) => {
    const loader = new DataLoader(train, {
      // DINO trains on its multi-crop views; every other method on SiT's two views.
      transform:
        method === "dino"
          ? multiCropTransform({
              globalSize: size,
              localSize: STUDY_DINO.localSize,
              nLocal: STUDY_DINO.nLocal,
              channels: 1,
              normalize: STATS,
              interpolation: "bilinear",
              blurSigma: [0.1, 1.0],
            })
          : sitTwoViewTransform({
              size,
              channels: 1,
              normalize: STATS,
              interpolation: "bilinear",
              blurSigma: [0.1, 1.0],
            }),
      batchSize: budget.batchSize,
      seed: budget.seed,
      dropLast: true,
    });
    const m = createMethod(method, budget);
    try {
      log(`[${method}] pretraining to step ${maxSteps} of ${budget.steps}`);
      const summary = await pretrain(m.recipe, {
        out: join(options.out, method),
        quiet: options.quiet,
        log,
        loader: (e) => loader.epoch(e),
        epochs: Math.ceil(budget.steps / loader.batchesPerEpoch),
        stepsPerEpoch: loader.batchesPerEpoch,
        maxSteps,
        // A kill loses at most an epoch of a curve segment.
        ...(budget.curve ? { checkpointEveryEpochs: 1 } : {}),
      });
      if (summary)
        await saveWeightsAsync((budget.from === "teacher" && m.teacher) || m.student, weights);
      return summary;
    } finally {
      m.recipe.dispose();
    }
  };
  const backbone = (method: Method, weights: string | null, dropPathRate = 0) => {
    const vit = new VisionTransformer({
      imgSize: size,
      patchSize: budget.patchSize,
      inChans: 1,
      embedDim: budget.embedDim,
      depth: budget.depth,
      numHeads: budget.numHeads,
      dropPathRate,
      rng: Rng.seed(budget.seed).split(),
    });
    if (method !== "random" && weights) loadWeights(vit, weights);
    return vit;
  };

  // Frozen features (cached on disk, keyed by the weights): k-NN and the linear probes.
  const frozenStages = async (method: Method, weights: string) => {
    const needFrozen =
      budget.fractions.some((f) => !store.get(`${method}/linear@${f}`)) ||
      !store.get(`${method}/knn`);
    if (needFrozen) {
      const vit = backbone(method, weights);
      try {
        const opts = {
          pool: "cls" as const,
          transform: evalT,
          transformKey: `eval-${size}`,
          // Keyed by the weights file (hashing the module would read it back synchronously).
          cache: {
            dir: join(options.out, "features"),
            modelKey:
              method === "random"
                ? `random-init:seed${budget.seed}`
                : `file:${hashCheckpointFile(weights)}`,
          },
          warn: log,
        };
        const trainF = await extractFeatures(vit, train, opts);
        const testF = await extractFeatures(vit, test, opts);
        await store.run(`${method}/knn`, async () => {
          const [r] = await onHostBackend(() =>
            knnEval(trainF, testF, { ks: [Math.min(budget.knnK, train.length)], numClasses: 10 }),
          );
          log(`[${method}] k-NN top-1 ${(100 * r.top1).toFixed(2)} %`);
          return r.top1;
        });
        for (const f of budget.fractions)
          await store.run(`${method}/linear@${f}`, async () => {
            const rows = firstKPerClass(trainF.labels, perClass(train, f));
            const r = await onHostBackend(() =>
              probeOnRows(trainF, testF, rows, { epochs: budget.probeEpochs, seed: budget.seed }),
            );
            log(
              `[${method}] linear probe, ${100 * f} % labels: ${(100 * r.last.top1).toFixed(2)} %`,
            );
            return r.last.top1;
          });
      } finally {
        vit.dispose();
      }
    }
  };

  for (const method of budget.methods)
    if (!METHODS.includes(method)) throw new Error(`unknown method ${method}`);
  if (budget.curve) {
    validateCurve(budget.curve, budget.steps);
    // Random init is every curve's baseline: evaluated first, so partial curves can be compared.
    if (budget.methods.includes("random")) await frozenStages("random", "");
    const trained = budget.methods.filter((m): m is Exclude<Method, "random"> => m !== "random");
    const finished = await runCurves(
      store,
      trained,
      budget.curve,
      budget.curveFractions ?? [0.1],
      options.out,
      {
        pretrainTo,
        model: (m, w) => backbone(m, w),
        train,
        test,
        evalTransform: evalT,
        evalTransformKey: `eval-${size}`,
        featureCacheDir: join(options.out, "features"),
        knnK: budget.knnK,
        probeEpochs: budget.probeEpochs,
        seed: budget.seed,
        perClass: (f) => perClass(train, f),
        log,
        onHost: onHostBackend,
      },
    );
    if (!finished) return store; // interrupted: run again to continue
  }

  for (const method of budget.methods) {
    const dir = join(options.out, method);
    const weights = join(dir, "backbone.safetensors");
    const io = { out: dir, quiet: options.quiet, log };
    if (method !== "random") {
      const done = await store.run(`${method}/pretrain`, async () => {
        if (!budget.curve) return pretrainTo(method, budget.steps, weights);
        // The curve's last segment is the full run: its weights are the final ones.
        copyFileSync(curveWeights(dir, budget.steps), weights);
        const steps = budget.steps;
        const sec = collectCurve(store, method, budget.curve, []).at(-1)?.pretrainSec;
        return { steps, elapsedSec: sec ?? 0 };
      });
      if (!done) return store; // interrupted: run again to continue
    }
    const model = (dropPathRate = 0) => backbone(method, weights, dropPathRate);

    await frozenStages(method, weights);

    for (const f of budget.fractions)
      await store.run(`${method}/finetune@${f}`, async () => {
        const subset = new SubsetDataset(train, firstKPerClass(train, perClass(train, f)));
        const vit = model(0.1);
        try {
          const r = await fineTuneStage(vit, subset, test, {
            ...io,
            name: `finetune-${f}`,
            epochs: f >= 1 ? budget.finetuneEpochs : budget.fewshotEpochs,
            batchSize: Math.min(budget.finetuneBatch, subset.length),
            head: "linear",
            ...(budget.finetuneLr !== undefined ? { lr: budget.finetuneLr } : {}),
            ...(budget.finetuneWarmup !== undefined ? { warmupEpochs: budget.finetuneWarmup } : {}),
            trainTransform: ftTrain,
            evalTransform: evalTransform({ size, resize: size, normalize: null, channels: 1 }),
            testTransform: evalT,
            normalize: NORMALIZE,
            numClasses: 10,
            seed: budget.seed,
          });
          log(
            `[${method}] fine-tuning, ${100 * f} % labels: ${(100 * r.evaluation.top1).toFixed(2)} %`,
          );
          return r.evaluation.top1;
        } finally {
          vit.dispose();
        }
      });
  }
  return store;
}

/** The recorded accuracies of every method, for the report. */
export function collectResults(
  store: StageStore,
  budget: StudyBudget,
): Record<string, MethodResults> {
  const out: Record<string, MethodResults> = {};
  for (const m of budget.methods) {
    const r: MethodResults = {
      pretrain: store.get(`${m}/pretrain`),
      knn: store.get(`${m}/knn`),
      linear: {},
      finetune: {},
    };
    for (const f of budget.fractions) {
      const lin = store.get<number>(`${m}/linear@${f}`);
      const ft = store.get<number>(`${m}/finetune@${f}`);
      if (lin !== undefined) r.linear[f] = lin;
      if (ft !== undefined) r.finetune[f] = ft;
    }
    if (budget.curve)
      r.curve = collectCurve(store, m, budget.curve, budget.curveFractions ?? [0.1]);
    out[m] = r;
  }
  return out;
}

/** Whether `dir` holds Fashion-MNIST's IDX files. */
export function isFashionMnistDir(dir: string): boolean {
  return ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"].every(
    (f) => existsSync(join(dir, f)) || existsSync(join(dir, `${f}.gz`)),
  );
}
