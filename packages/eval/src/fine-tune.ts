import * as tf from "@tensorflow/tfjs";
import {
  AdamW,
  ConfigError,
  type Module,
  Rng,
  ShapeError,
  checkNumber,
  cosineSchedule,
  describeValue,
} from "@sit/core";
import {
  type Dataset,
  type MixupOptions,
  type RandAugmentOptions,
  type Sample,
  mixBatch,
  randAugment,
  smoothOneHot,
} from "@sit/data";
import { LinearClassifier, SitClassifier, type VisionTransformer, type VitOutput } from "@sit/vit";
import { type ImageTransform, checkTransform, samplesToImages } from "./images";
import { layerDecayGroups } from "./layer-decay";
import { topKAccuracy } from "./metrics";

/** A classification head on ViT outputs (e.g. @sit/vit's LinearClassifier or SitClassifier). */
export interface ClassifierHead extends Module {
  /** Feature size the head expects (the backbone's `embedDim`). */
  readonly dim: number;
  readonly numClasses: number;
  apply(output: VitOutput): tf.Tensor2D;
}

/** Options of {@link fineTune}; defaults follow DeiT's fine-tuning recipe where it applies. */
export interface FineTuneOptions {
  /** Default 100. */
  epochs?: number;
  /** Default 64 (DeiT's per-GPU batch). */
  batchSize?: number;
  /** Peak learning rate. Default DeiT's 5e-4 · batchSize / 512. */
  lr?: number;
  /** Final learning rate of the cosine. Default 1e-5. */
  minLr?: number;
  /** Linear warm-up epochs (from `warmupLr`). Default 5, at most epochs − 1. */
  warmupEpochs?: number;
  /** Default 1e-6. */
  warmupLr?: number;
  /** AdamW weight decay (not on biases, norms, cls_token, pos_embed). Default 0.05. */
  weightDecay?: number;
  /** Label smoothing ε. Default 0.1. */
  labelSmoothing?: number;
  /** Layer-wise lr decay factor (1 = off, BEiT/MAE use 0.65–0.75). Default 1. */
  layerDecay?: number;
  /** Mixup/CutMix per batch (DeiT: `{}` = mixup 0.8, CutMix 1.0, switch 0.5). Default off. */
  mixup?: MixupOptions | false;
  /** RandAugment (DeiT: `{}` = rand-m9-mstd0.5-inc1, without Equalize). Default off. */
  randAugment?: RandAugmentOptions | false;
  /** Training transform (e.g. random resized crop + flip from @sit/data), giving images in [0, 1]. */
  trainTransform?: ImageTransform;
  /** Test transform (e.g. @sit/data's evalTransform without normalisation). */
  evalTransform?: ImageTransform;
  /** Per-channel normalisation applied last (after RandAugment, before mixup), to train and test images. */
  normalize?: { mean: number[]; std: number[] };
  /** `linear` (DeiT: Linear on CLS), `sit` (concat(CLS, mean patch) → MLP), or a head module. Default `linear`. */
  head?: "linear" | "sit" | ClassifierHead;
  /** Number of classes; default the training set's `numClasses`, or one more than its largest label. */
  numClasses?: number;
  /** Global-norm gradient clipping (DeiT: off). Default off. */
  clipGrad?: number | null;
  /** Seed of the head's initialisation, shuffling, augmentation and drop-path draws. */
  seed: number;
  /** Called after every epoch (e.g. to write a checkpoint or a JSONL line). */
  onEpoch?: (report: FineTuneEpoch) => void | Promise<void>;
}

/** One epoch of {@link fineTune}; accuracies are fractions in [0, 1]. */
export interface FineTuneEpoch {
  epoch: number;
  trainLoss: number;
  /** Learning rate at the epoch's last step (before layer scaling). */
  lr: number;
  testTop1: number;
  testTop5: number;
}

/** Result of {@link fineTune}: the model is trained in place; both are left in eval mode. */
export interface FineTuneResult {
  epochs: FineTuneEpoch[];
  last: { epoch: number; top1: number; top5: number };
  /** Best test top-1 over the epochs (chosen on the test split: optimistic, reported as DeiT logs do). */
  bestTest: { epoch: number; top1: number; top5: number };
  head: ClassifierHead;
}

function labelsOf(dataset: Dataset, name: string): Int32Array {
  if (dataset.labels) {
    const i = dataset.labels.findIndex((y) => y < 0);
    if (i >= 0)
      throw new ConfigError(
        `${name}.labels[${i}]: expected a class label, got ${dataset.labels[i]}`,
      );
    return dataset.labels;
  }
  throw new ConfigError(
    `${name}: expected a labelled dataset (with labels), got one without labels (unlabeled data cannot be used for fine-tuning or evaluation)`,
  );
}

async function loadSamples(dataset: Dataset, indices: ArrayLike<number>): Promise<Sample[]> {
  return Promise.all(Array.from(indices, (i) => Promise.resolve(dataset.get(i))));
}

/** {@link fineTune}'s defaults: DeiT's recipe (peak lr `lrPer512`·batchSize/512). */
export const FINE_TUNE_DEFAULTS = {
  epochs: 100,
  batchSize: 64,
  lrPer512: 5e-4,
  minLr: 1e-5,
  warmupLr: 1e-6,
  warmupEpochs: 5,
  weightDecay: 0.05,
  labelSmoothing: 0.1,
  layerDecay: 1,
} as const;

/**
 * Fine-tune a whole ViT with a classification head, DeiT-style: AdamW (optionally with
 * layer-wise lr decay), per-step linear warm-up + cosine learning rate, label-smoothed
 * cross-entropy, stochastic depth at the model's configured rate, optional RandAugment and
 * Mixup/CutMix. Test accuracy is measured after each epoch. Not implemented from DeiT's recipe:
 * random erasing, repeated augmentation, model EMA and RandAugment's Equalize.
 */
export async function fineTune(
  model: VisionTransformer,
  trainData: Dataset,
  testData: Dataset,
  options: FineTuneOptions,
): Promise<FineTuneResult> {
  const d = FINE_TUNE_DEFAULTS;
  const epochs = checkNumber("epochs", options.epochs ?? d.epochs, { integer: true, min: 1 });
  const batchSize = checkNumber("batchSize", options.batchSize ?? d.batchSize, {
    integer: true,
    min: 1,
  });
  const lr = checkNumber("lr", options.lr ?? (d.lrPer512 * batchSize) / 512, { min: 0 });
  const minLr = checkNumber("minLr", options.minLr ?? d.minLr, { min: 0 });
  const warmupLr = checkNumber("warmupLr", options.warmupLr ?? d.warmupLr, { min: 0 });
  const warmupEpochs = Math.min(
    checkNumber("warmupEpochs", options.warmupEpochs ?? d.warmupEpochs, { min: 0 }),
    epochs - 1,
  );
  const weightDecay = checkNumber("weightDecay", options.weightDecay ?? d.weightDecay, { min: 0 });
  const smoothing = checkNumber("labelSmoothing", options.labelSmoothing ?? d.labelSmoothing, {
    min: 0,
    max: 1,
    maxExclusive: true,
  });
  const layerDecay = checkNumber("layerDecay", options.layerDecay ?? d.layerDecay, {
    min: 0,
    minExclusive: true,
    max: 1,
  });
  const seed = checkNumber("seed", options.seed, { integer: true });
  checkTransform("trainTransform", options.trainTransform);
  checkTransform("evalTransform", options.evalTransform);
  if (!model || typeof model.forward !== "function" || !Number.isInteger(model.embedDim))
    throw new ConfigError(
      `model: expected a VisionTransformer from @sit/vit, got ${describeValue(model)}`,
    );
  const trainLabels = labelsOf(trainData, "trainData");
  const testLabels = labelsOf(testData, "testData");
  let maxLabel = 0;
  for (const y of trainLabels) maxLabel = Math.max(maxLabel, y);
  const numClasses = checkNumber(
    "numClasses",
    options.numClasses ?? trainData.numClasses ?? maxLabel + 1,
    { integer: true, min: 1 },
  );
  for (const [name, labels] of [
    ["trainData", trainLabels],
    ["testData", testLabels],
  ] as const) {
    const i = labels.findIndex((y) => y >= numClasses);
    if (i >= 0)
      throw new ConfigError(
        `${name}.labels[${i}]: expected a label in [0, ${numClasses}) (numClasses), got ${labels[i]}`,
      );
  }

  const rng = Rng.seed(seed);
  const head = makeHead(options.head, model.embedDim, numClasses, rng.split());
  const shuffleRng = rng.split();
  const augmentRng = rng.split();
  const dropPathRng = rng.split();
  const mean = options.normalize ? tf.tensor1d(options.normalize.mean) : null;
  const std = options.normalize ? tf.tensor1d(options.normalize.std) : null;
  const n = trainLabels.length;
  const stepsPerEpoch =
    n > 1 && n % batchSize === 1 ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
  const schedule = cosineSchedule({
    base: lr,
    final: minLr,
    totalSteps: epochs * stepsPerEpoch,
    warmupSteps: Math.round(warmupEpochs * stepsPerEpoch),
    warmupStart: warmupLr,
  });
  const named: [string, tf.Variable][] = [
    ...model.namedParameters(),
    ...head.namedParameters("head"),
  ].filter(([, p]) => p.trainable);
  const optimizer = new AdamW(
    layerDecayGroups(named, { depth: model.depth, layerDecay, weightDecay }),
    {
      lr,
      weightDecay,
      clipGlobalNorm: options.clipGrad ?? null,
    },
  );
  const vars = named.map(([, p]) => p);
  const reports: FineTuneEpoch[] = [];
  const normalize = (x: tf.Tensor4D): tf.Tensor4D =>
    mean && std ? (tf.div(tf.sub(x, mean), std) as tf.Tensor4D) : x;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      model.train();
      head.train();
      const order = shuffleRng.permutation(n);
      const losses: tf.Tensor[] = [];
      for (let s = 0; s < stepsPerEpoch; s++) {
        const idx = order.subarray(s * batchSize, Math.min(n, (s + 1) * batchSize));
        const samples = await loadSamples(trainData, idx);
        const raw = samplesToImages(samples, options.trainTransform, augmentRng.split(), idx[0]);
        const step = epoch * stepsPerEpoch + s;
        optimizer.setLr(schedule[step]);
        const loss = tf.tidy(() => {
          let images = raw;
          if (options.randAugment) images = randAugment(images, augmentRng, options.randAugment);
          images = normalize(images);
          let targets = smoothOneHot(
            tf.tensor1d(
              Int32Array.from(idx, (i) => trainLabels[i]),
              "int32",
            ),
            numClasses,
            smoothing,
          );
          if (options.mixup)
            ({ images, targets } = mixBatch(images, targets, augmentRng, options.mixup));
          const { value, grads } = tf.variableGrads(() => {
            const logits = head.apply(model.forward(images, { rng: dropPathRng }));
            // Soft-target cross-entropy (timm's SoftTargetCrossEntropy).
            return tf.mean(tf.sum(tf.mul(tf.neg(targets), tf.logSoftmax(logits)), 1)) as tf.Scalar;
          }, vars);
          optimizer.step(grads);
          return value;
        });
        raw.dispose();
        losses.push(loss);
      }
      // Asynchronous reads here and below: WebGPU under Node has no synchronous one.
      const lossTotal = tf.addN(losses);
      const lossSum = (await lossTotal.data())[0];
      lossTotal.dispose();
      tf.dispose(losses);
      const { top1, top5 } = await evaluate(
        model,
        head,
        testData,
        testLabels,
        numClasses,
        batchSize,
        options.evalTransform,
        normalize,
      );
      const report: FineTuneEpoch = {
        epoch: epoch + 1,
        trainLoss: lossSum / stepsPerEpoch,
        lr: schedule[(epoch + 1) * stepsPerEpoch - 1],
        testTop1: top1,
        testTop5: top5,
      };
      reports.push(report);
      await options.onEpoch?.(report);
    }
  } catch (err) {
    if (options.head === undefined || typeof options.head === "string") head.dispose();
    throw err;
  } finally {
    optimizer.dispose();
    tf.dispose([mean, std].filter((t): t is tf.Tensor1D => t !== null));
  }
  model.eval();
  head.eval();
  const last = reports[reports.length - 1];
  let best = reports[0];
  for (const r of reports) if (r.testTop1 > best.testTop1) best = r;
  return {
    epochs: reports,
    last: { epoch: last.epoch, top1: last.testTop1, top5: last.testTop5 },
    bestTest: { epoch: best.epoch, top1: best.testTop1, top5: best.testTop5 },
    head,
  };
}

function makeHead(
  spec: FineTuneOptions["head"],
  dim: number,
  numClasses: number,
  rng: Rng,
): ClassifierHead {
  if (spec === undefined || spec === "linear")
    return new LinearClassifier(dim, numClasses, { rng });
  if (spec === "sit") return new SitClassifier(dim, numClasses, { rng });
  if (spec && typeof spec === "object" && typeof spec.apply === "function") {
    if (spec.dim !== dim)
      throw new ShapeError(
        `head: expects ${spec.dim}-dimensional features, but the backbone gives ${dim} (embedDim) — this head was made for another backbone`,
      );
    if (spec.numClasses !== numClasses)
      throw new ShapeError(
        `head: has ${spec.numClasses} classes, but the data has ${numClasses} (numClasses)`,
      );
    return spec;
  }
  throw new ConfigError(
    `head: expected "linear", "sit" or a head module, got ${describeValue(spec)}`,
  );
}

/** Top-1/top-5 of model + head over a labelled dataset, in eval mode and batches. */
export async function evaluateClassifier(
  model: VisionTransformer,
  head: ClassifierHead,
  dataset: Dataset,
  options: { batchSize?: number; transform?: ImageTransform; numClasses?: number } = {},
): Promise<{ top1: number; top5: number; scores: Float32Array }> {
  const labels = labelsOf(dataset, "dataset");
  if (head.dim !== model.embedDim)
    throw new ShapeError(
      `head: expects ${head.dim}-dimensional features, but the backbone gives ${model.embedDim} (embedDim)`,
    );
  checkTransform("transform", options.transform);
  return evaluate(
    model,
    head,
    dataset,
    labels,
    options.numClasses ?? head.numClasses,
    options.batchSize ?? 64,
    options.transform,
    (x) => x,
  );
}

async function evaluate(
  model: VisionTransformer,
  head: ClassifierHead,
  dataset: Dataset,
  labels: Int32Array,
  numClasses: number,
  batchSize: number,
  transform: ImageTransform | undefined,
  normalize: (x: tf.Tensor4D) => tf.Tensor4D,
): Promise<{ top1: number; top5: number; scores: Float32Array }> {
  model.eval();
  head.eval();
  const n = dataset.length;
  const scores = new Float32Array(n * numClasses);
  for (let s = 0; s < n; s += batchSize) {
    const idx = Array.from({ length: Math.min(batchSize, n - s) }, (_, i) => s + i);
    const samples = await loadSamples(dataset, idx);
    const raw = samplesToImages(samples, transform, Rng.seed(s), s);
    const logits = tf.tidy(() => head.apply(model.forward(normalize(raw))));
    raw.dispose();
    scores.set((await logits.data()) as Float32Array, s * numClasses);
    logits.dispose();
  }
  return {
    top1: topKAccuracy(scores, labels, 1, numClasses),
    top5: topKAccuracy(scores, labels, Math.min(5, numClasses), numClasses),
    scores,
  };
}
