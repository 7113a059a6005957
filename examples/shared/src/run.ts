import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { type BackendInfo, Rng } from "@sit/core";
import { initBackend } from "@sit/core/node";
import {
  BatchTransform,
  DataLoader,
  type Dataset,
  IMAGENET_STATS,
  RandomHorizontalFlip,
  RandomResizedCrop,
  SubsetDataset,
  ViewPipeline,
  evalTransform,
  sitTwoViewTransform,
} from "@sit/data";
import { downloadDataset } from "@sit/data/node";
import {
  type BackboneConfig,
  backboneSchema,
  buildBackbone,
  createSiT,
  parseConfig,
} from "@sit/recipes";
import { type ExampleFlags, USAGE, parseExampleArgs } from "./args";
import { type ExampleConfig, deepMerge, readExampleConfig, sitConfigOf } from "./config";
import { type DatasetSpec, type ExampleSplits, datasetSpec, readerRoot } from "./datasets";
import { StageStore } from "./stage-store";
import {
  type FineTuneSummary,
  type KnnSummary,
  type PretrainSummary,
  fineTuneStage,
  knnStage,
  loadWeights,
  pretrain,
  saveWeights,
} from "./stages";

/**
 * What `--smoke` changes: a tiny ViT (32 px, patch 8, width 32, depth 2) and heads, 8 images per
 * split, batch 4, 2 pretraining steps, one fine-tuning epoch, k = 3. Every stage still runs.
 */
export const SMOKE = {
  sit: {
    backbone: { imgSize: 32, patchSize: 8, embedDim: 32, depth: 2, numHeads: 2 },
    projection: { hidden: 64, outDim: 32 },
    optim: { epochs: 1, batchSize: 4, warmupEpochs: 0 },
  },
  imagesPerSplit: 8,
  maxSteps: 2,
  finetune: { epochs: 1, batchSize: 4, warmupEpochs: 0 },
  knnK: 3,
} as const;

/** Everything a run decided before it started. */
export interface RunPlan {
  config: ExampleConfig;
  sit: Record<string, unknown>;
  backbone: BackboneConfig;
  flags: ExampleFlags;
  out: string;
  maxSteps?: number;
}

/** Merge the config, the flags and (with `--smoke`) the smoke settings into one plan. */
export function planRun(config: ExampleConfig, flags: ExampleFlags, cwd = process.cwd()): RunPlan {
  let sit = sitConfigOf(config);
  sit = deepMerge(sit, { seed: flags.seed ?? config.seed });
  let finetune = { ...config.finetune };
  if (flags.smoke) {
    sit = deepMerge(sit, SMOKE.sit);
    finetune = { ...finetune, ...SMOKE.finetune };
  }
  if (flags.pretrainEpochs) sit = deepMerge(sit, { optim: { epochs: flags.pretrainEpochs } });
  if (flags.batchSize) sit = deepMerge(sit, { optim: { batchSize: flags.batchSize } });
  if (flags.finetuneEpochs) finetune.epochs = flags.finetuneEpochs;
  if (flags.from) finetune.from = flags.from;
  const backbone = parseConfig(backboneSchema, sit.backbone, "sit.backbone");
  return {
    config: { ...config, finetune, seed: flags.seed ?? config.seed },
    sit,
    backbone,
    flags,
    out: resolve(
      cwd,
      flags.out ??
        join(
          "runs",
          config.name + (flags.noPretrain ? "-random-init" : "") + (flags.smoke ? "-smoke" : ""),
        ),
    ),
    maxSteps: flags.maxSteps ?? (flags.smoke ? SMOKE.maxSteps : undefined),
  };
}

/** The first `n` samples of a dataset (smoke runs). */
function head(ds: Dataset, n: number): Dataset {
  return new SubsetDataset(
    ds,
    Array.from({ length: Math.min(n, ds.length) }, (_, i) => i),
  );
}

async function openData(
  spec: DatasetSpec,
  flags: ExampleFlags,
  log: (line: string) => void,
): Promise<ExampleSplits> {
  let root: string;
  if (flags.data) root = readerRoot(spec, flags.data);
  else if (!spec.source)
    throw new Error(
      `${spec.title} cannot be downloaded automatically (its original host no longer serves the files): get a copy with the devkit and pass --data DIR (see the example's README)`,
    );
  else {
    const dir = resolve(flags.downloadDir ?? join(".sit-cache", "datasets", spec.source));
    log(`downloading ${spec.title} into ${dir} (resumable; verified when checksums are known)`);
    root = (await downloadDataset(spec.source, dir)).readerDir;
  }
  const splits = spec.open(root);
  if (!flags.smoke) return splits;
  const n = SMOKE.imagesPerSplit;
  return {
    pretrain: head(splits.pretrain, n),
    train: head(splits.train, n),
    test: head(splits.test, n),
  };
}

/** The results file of a paper example (`out/results.json`). */
export interface ExampleResults {
  example: string;
  dataset: string;
  smoke: boolean;
  pretrain?: PretrainSummary | "skipped (--no-pretrain)";
  knn?: KnnSummary;
  finetune?: FineTuneSummary;
  resultsPath: string;
  /** False when pretraining was interrupted (run again to continue). */
  complete: boolean;
}

/** Options of {@link runExample} that are not command-line flags. */
export interface RunOptions {
  /** Working directory for relative paths. Default process.cwd(). */
  cwd?: string;
  /** No progress output (tests). */
  quiet?: boolean;
  log?: (line: string) => void;
}

/**
 * Run one paper example end to end: data (download or `--data`), SiT pretraining (resumable),
 * k-NN of the pretrained backbone, DeiT-style fine-tuning and the final test evaluation. Each
 * finished stage is recorded in `out/results.json` and skipped when the run is repeated.
 */
export async function runExample(
  config: ExampleConfig,
  flags: ExampleFlags,
  options: RunOptions = {},
): Promise<ExampleResults> {
  const log = options.log ?? ((line: string) => console.log(line));
  const plan = planRun(config, flags, options.cwd);
  const spec = datasetSpec(config.dataset);
  let backendInfo: BackendInfo | undefined;
  if (flags.backend) backendInfo = await initBackend(flags.backend, { log: !options.quiet });
  else if (!options.quiet) backendInfo = await initBackend("auto");
  const store = new StageStore(
    join(plan.out, "results.json"),
    {
      sit: plan.sit,
      finetune: plan.config.finetune,
      knn: plan.config.knn,
      pretrain: plan.config.pretrain,
      smoke: flags.smoke,
      noPretrain: flags.noPretrain,
      maxSteps: plan.maxSteps,
    },
    {
      example: config.name,
      dataset: spec.title,
      splits: spec.splits,
      backend: backendInfo?.name ?? tf.getBackend(),
      tfjs: tf.version.tfjs,
    },
  );
  const splits = await openData(spec, flags, log);
  const size = plan.backbone.imgSize;
  const weightsPath = join(plan.out, "pretrained-backbone.safetensors");
  const io = { out: plan.out, quiet: options.quiet, log };

  let pre: PretrainSummary | "skipped (--no-pretrain)" | undefined = "skipped (--no-pretrain)";
  if (!flags.noPretrain) {
    pre = await store.run("pretrain", async () => {
      const batchSize = (plan.sit.optim as { batchSize: number }).batchSize;
      const loader = new DataLoader(splits.pretrain, {
        transform: sitTwoViewTransform({
          size,
          scale: config.pretrain.cropScale,
          interpolation: config.pretrain.interpolation,
        }),
        batchSize,
        seed: plan.config.seed,
        dropLast: splits.pretrain.length >= batchSize,
      });
      const stepsPerEpoch = loader.batchesPerEpoch;
      const recipe = createSiT(deepMerge(plan.sit, { optim: { stepsPerEpoch } }) as never);
      try {
        const summary = await pretrain(recipe, {
          ...io,
          loader: (e) => loader.epoch(e),
          epochs: recipe.config.optim.epochs,
          stepsPerEpoch,
          maxSteps: plan.maxSteps,
          checkpointEveryEpochs: config.pretrain.checkpointEveryEpochs,
        });
        if (summary) {
          const net =
            plan.config.finetune.from === "teacher" ? recipe.teacher.module : recipe.student;
          saveWeights(net.backbone, weightsPath, { from: plan.config.finetune.from });
        }
        return summary;
      } finally {
        recipe.dispose();
      }
    });
    if (pre === undefined) return finish(store, config, flags, false);
  }

  /** A fresh backbone for evaluation/fine-tuning, with the pretrained weights when there are some. */
  const makeModel = () => {
    const model = buildBackbone(plan.backbone, Rng.seed(plan.config.seed).split(), {
      dropPathRate: plan.config.finetune.dropPathRate,
    });
    if (!flags.noPretrain) loadWeights(model, weightsPath);
    return model;
  };

  if (config.knn.enabled)
    await store.run("knn", async () => {
      const model = makeModel();
      try {
        return await knnStage(model, splits.train, splits.test, {
          k: flags.smoke ? SMOKE.knnK : config.knn.k,
          transform: evalTransform({ size }),
          numClasses: spec.numClasses,
        });
      } finally {
        model.dispose();
      }
    });

  await store.run("finetune", async () => {
    const ft = plan.config.finetune;
    const model = makeModel();
    try {
      return await fineTuneStage(model, splits.train, splits.test, {
        ...io,
        epochs: ft.epochs,
        batchSize: ft.batchSize,
        lr: ft.lr,
        minLr: ft.minLr,
        warmupEpochs: ft.warmupEpochs,
        weightDecay: ft.weightDecay,
        labelSmoothing: ft.labelSmoothing,
        layerDecay: ft.layerDecay,
        head: ft.head,
        mixup: ft.mixup ? {} : false,
        randAugment: ft.randAugment ? {} : false,
        trainTransform: new BatchTransform(
          "images",
          [
            new ViewPipeline(
              new RandomResizedCrop({ size, scale: ft.cropScale, interpolation: "bicubic" }),
              [new RandomHorizontalFlip()],
            ),
          ],
          3,
        ),
        evalTransform: evalTransform({ size, normalize: null }),
        testTransform: evalTransform({ size }),
        normalize: { mean: [...IMAGENET_STATS.mean], std: [...IMAGENET_STATS.std] },
        numClasses: spec.numClasses,
        seed: plan.config.seed,
      });
    } finally {
      model.dispose();
    }
  });
  return finish(store, config, flags, true);
}

function finish(
  store: StageStore,
  config: ExampleConfig,
  flags: ExampleFlags,
  complete: boolean,
): ExampleResults {
  store.setMeta({ complete, updatedAt: new Date().toISOString() });
  return {
    example: config.name,
    dataset: config.dataset,
    smoke: flags.smoke,
    pretrain: flags.noPretrain ? "skipped (--no-pretrain)" : store.get("pretrain"),
    knn: store.get("knn"),
    finetune: store.get("finetune"),
    resultsPath: store.path,
    complete,
  };
}

/**
 * The whole `main.ts` of a paper example: read `config.json` next to `src/`, parse the command
 * line, run, print a summary; exit code 1 on an error, 130 when interrupted.
 */
export async function runExampleCli(
  configUrl: URL,
  argv: readonly string[] = process.argv.slice(2),
): Promise<void> {
  const configPath = fileURLToPath(configUrl);
  try {
    const flags = parseExampleArgs(argv);
    const config = readExampleConfig(configPath);
    if (flags.help) {
      console.log(
        `${config.name}: SiT pretraining + fine-tuning on ${datasetSpec(config.dataset).title}\n${USAGE}`,
      );
      return;
    }
    if (flags.printConfig) {
      const plan = planRun(config, flags);
      console.log(
        JSON.stringify(
          { ...plan.config, sit: plan.sit, out: plan.out, maxSteps: plan.maxSteps },
          null,
          2,
        ),
      );
      return;
    }
    const r = await runExample(config, flags);
    if (!r.complete) {
      process.exitCode = 130;
      return;
    }
    const pct = (x: number | undefined) => (x === undefined ? "–" : `${(100 * x).toFixed(2)} %`);
    console.log(
      `${config.name}: k-NN top-1 ${pct(r.knn?.top1)}, fine-tuned top-1 ${pct(r.finetune?.evaluation.top1)} (mean per class ${pct(r.finetune?.evaluation.meanPerClass)}); results in ${r.resultsPath}`,
    );
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    if (existsSync(configPath) && process.env.SIT_DEBUG) console.error(err);
    process.exitCode = 1;
  }
}
