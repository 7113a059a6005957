import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng, checkNumber, cosineSchedule, describeValue } from "@sit/core";
import { smoothOneHot } from "@sit/data";
import { type FeatureSet, checkLabeled, inferNumClasses } from "./feature-set";
import { LinearHead } from "./linear-head";
import { topKAccuracy } from "./metrics";
import { type HeadOptimizer, makeHeadOptimizer } from "./head-optimizer";

/** Options of {@link linearProbe}. */
export interface LinearProbeOptions {
  /** Training epochs. Default 100 (DINO's linear evaluation). */
  epochs?: number;
  /** Peak learning rate (after warm-up), cosine-decayed to `minLr`. Default 0.1 for SGD, 1e-3 for AdamW. */
  lr?: number;
  /** Final learning rate of the cosine. Default 0. */
  minLr?: number;
  /** Linear warm-up epochs from 0. Default 0. */
  warmupEpochs?: number;
  /** Mini-batch size. Default 256. */
  batchSize?: number;
  /** Weight decay on the weight matrix (never on biases). Default 0. */
  weightDecay?: number;
  /** `sgd` (momentum, PyTorch semantics; DINO's choice) or `adamw` (@sit/core's AdamW). Default `sgd`. */
  optimizer?: "sgd" | "adamw";
  /** SGD momentum. Default 0.9. */
  momentum?: number;
  /** BatchNorm without affine before the linear layer (MAE's probe). Default false. */
  batchNormNoAffine?: boolean;
  /**
   * A held-out validation split (never the test split): when given, the epoch with the best
   * validation top-1 is selected and its test accuracy is reported as `selected`.
   */
  validation?: FeatureSet;
  /** Number of classes; default one more than the largest label. */
  numClasses?: number;
  /** Seed of the head's initialisation and of the shuffling. */
  seed: number;
  /** Called after every epoch. */
  onEpoch?: (report: ProbeEpoch) => void;
}

/** One epoch of {@link linearProbe}; accuracies are fractions in [0, 1]. */
export interface ProbeEpoch {
  epoch: number;
  trainLoss: number;
  testTop1: number;
  testTop5: number;
  valTop1?: number;
}

/** Result of {@link linearProbe}. */
export interface LinearProbeResult {
  epochs: ProbeEpoch[];
  /** Test accuracy after the last epoch: the figure that uses no test data for any choice. */
  last: { epoch: number; top1: number; top5: number };
  /** The best test top-1 over the epochs (optimistic: chosen on the test split, as DINO's log reports). */
  bestTest: { epoch: number; top1: number; top5: number };
  /** With `validation`: the epoch of best validation top-1 and the test accuracy at that epoch. */
  selected?: { epoch: number; valTop1: number; top1: number; top5: number };
  /** The trained head: the last epoch's weights, or the selected epoch's with `validation`. */
  head: LinearHead;
}

/** {@link linearProbe}'s defaults: DINO's SGD probe (lr per optimiser). */
export const LINEAR_PROBE_DEFAULTS = {
  epochs: 100,
  optimizer: "sgd",
  lr: { sgd: 0.1, adamw: 1e-3 },
  batchSize: 256,
  weightDecay: 0,
} as const;

/**
 * Linear evaluation of frozen features: a linear classifier (optionally after BatchNorm without
 * affine, as MAE) trained with cross-entropy, SGD-momentum or AdamW, and a per-step warm-up +
 * cosine learning rate; test accuracy reported after every epoch. The test split is only measured,
 * never used to choose anything; model selection needs `validation`.
 */
export function linearProbe(
  train: FeatureSet,
  test: FeatureSet,
  options: LinearProbeOptions,
): LinearProbeResult {
  const d = LINEAR_PROBE_DEFAULTS;
  const epochs = checkNumber("epochs", options.epochs ?? d.epochs, { integer: true, min: 1 });
  const optimizerName = options.optimizer ?? d.optimizer;
  if (optimizerName !== "sgd" && optimizerName !== "adamw")
    throw new ConfigError(
      `optimizer: expected "sgd" or "adamw", got ${describeValue(optimizerName)}`,
    );
  const lr = checkNumber("lr", options.lr ?? d.lr[optimizerName], { min: 0 });
  const minLr = checkNumber("minLr", options.minLr ?? 0, { min: 0 });
  const warmup = checkNumber("warmupEpochs", options.warmupEpochs ?? 0, {
    min: 0,
    max: epochs,
    maxExclusive: true,
  });
  const batchSize = checkNumber("batchSize", options.batchSize ?? d.batchSize, {
    integer: true,
    min: 1,
  });
  const weightDecay = checkNumber("weightDecay", options.weightDecay ?? d.weightDecay, { min: 0 });
  const seed = checkNumber("seed", options.seed, { integer: true });
  checkLabeled("train", train, options.numClasses);
  checkLabeled("test", test, options.numClasses);
  if (options.validation) checkLabeled("validation", options.validation, options.numClasses);
  for (const [name, s] of [
    ["test", test],
    ["validation", options.validation],
  ] as const)
    if (s && s.dim !== train.dim)
      throw new ConfigError(
        `${name}.dim: expected the training features' dimension ${train.dim}, got ${s.dim}`,
      );
  const numClasses =
    options.numClasses ??
    inferNumClasses(train, test, ...(options.validation ? [options.validation] : []));
  const bn = options.batchNormNoAffine ?? false;
  const n = train.labels.length;
  const { dim } = train;
  if (bn && n < 2) throw new ConfigError(`train: BatchNorm needs at least 2 rows, got ${n}`);
  // A final batch of one row cannot be batch-normalised; drop it (it is reshuffled next epoch).
  const stepsPerEpoch =
    bn && n % batchSize === 1 ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);

  const rng = Rng.seed(seed);
  const head = new LinearHead(dim, numClasses, { rng: rng.split(), batchNorm: bn });
  const shuffle = rng.split();
  const schedule = cosineSchedule({
    base: lr,
    final: minLr,
    totalSteps: epochs * stepsPerEpoch,
    warmupSteps: Math.round(warmup * stepsPerEpoch),
  });
  const named = head.namedParameters();
  const params = named.map(([, p]) => p);
  const optimizer: HeadOptimizer = makeHeadOptimizer(optimizerName, named, {
    momentum: options.momentum ?? 0.9,
    weightDecay,
  });
  const reports: ProbeEpoch[] = [];
  let selected: LinearProbeResult["selected"];
  let selectedState: tf.Tensor[] | undefined;
  const xb = new Float32Array(batchSize * dim);
  const yb = new Int32Array(batchSize);
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      head.train();
      const order = shuffle.permutation(n);
      const losses: tf.Tensor[] = [];
      for (let s = 0; s < stepsPerEpoch; s++) {
        const rows = Math.min(batchSize, n - s * batchSize);
        for (let r = 0; r < rows; r++) {
          const i = order[s * batchSize + r];
          xb.set(train.features.subarray(i * dim, (i + 1) * dim), r * dim);
          yb[r] = train.labels[i];
        }
        const step = epoch * stepsPerEpoch + s;
        losses.push(
          tf.tidy(() => {
            const x = tf.tensor2d(xb.subarray(0, rows * dim), [rows, dim]);
            // smoothOneHot, not tf.oneHot(…, 1, 0, "float32"): the latter is wrong on wasm.
            const y = smoothOneHot(tf.tensor1d(yb.subarray(0, rows), "int32"), numClasses, 0);
            const { value, grads } = tf.variableGrads(
              () => tf.losses.softmaxCrossEntropy(y, head.apply(x)) as tf.Scalar,
              params,
            );
            optimizer.step(
              params.map((p) => grads[p.name]),
              schedule[step],
            );
            return value;
          }),
        );
      }
      const lossSum = tf.tidy(() => tf.addN(losses).dataSync()[0]);
      tf.dispose(losses);
      const testScores = head.predict(test.features, dim);
      const report: ProbeEpoch = {
        epoch: epoch + 1,
        trainLoss: lossSum / losses.length,
        testTop1: topKAccuracy(testScores, test.labels, 1, numClasses),
        testTop5: topKAccuracy(testScores, test.labels, Math.min(5, numClasses), numClasses),
      };
      if (options.validation) {
        const v = options.validation;
        report.valTop1 = topKAccuracy(head.predict(v.features, dim), v.labels, 1, numClasses);
        if (!selected || report.valTop1 > selected.valTop1) {
          selected = {
            epoch: epoch + 1,
            valTop1: report.valTop1,
            top1: report.testTop1,
            top5: report.testTop5,
          };
          tf.dispose(selectedState ?? []);
          selectedState = head.namedParameters().map(([, p]) => p.clone());
          selectedState.push(...head.namedBuffers().map(([, b]) => b.clone()));
        }
      }
      reports.push(report);
      options.onEpoch?.(report);
    }
    if (selectedState) {
      const vars = [...head.namedParameters(), ...head.namedBuffers()].map(([, v]) => v);
      for (const [i, v] of vars.entries()) v.assign(selectedState[i]);
    }
  } catch (err) {
    head.dispose();
    throw err;
  } finally {
    optimizer.dispose();
    tf.dispose(selectedState ?? []);
  }
  head.eval();
  const last = reports[reports.length - 1];
  let best = reports[0];
  for (const r of reports) if (r.testTop1 > best.testTop1) best = r;
  return {
    epochs: reports,
    last: { epoch: last.epoch, top1: last.testTop1, top5: last.testTop5 },
    bestTest: { epoch: best.epoch, top1: best.testTop1, top5: best.testTop5 },
    ...(selected ? { selected } : {}),
    head,
  };
}
