import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { BACKEND_CHOICES } from "./backend";
import { UsageError } from "./io";
import { defaultPreset, defaultText } from "./help";
import { RECIPE_NAMES } from "./recipes";
import {
  DATASET_HELP,
  type PretrainConfig,
  deepMerge,
  parseWith,
  pretrainSchema,
  readJsonConfig,
  setPath,
} from "./run-config";

/** Parser of an integer option value ≥ `min`. */
export function int(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`expected an integer ≥ ${min}.`);
    return n;
  };
}

/** Parser of a finite number option value in [min, max]. */
export function num(min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected a number in [${min}, ${max}].`);
    return n;
  };
}

/** Parser of a comma-separated list of integers ≥ `min`. */
export function intList(min: number) {
  return (value: string): number[] => {
    const parts = value.split(",").map((s) => s.trim());
    const nums = parts.map(Number);
    if (parts.some((p) => p === "") || nums.some((n) => !Number.isInteger(n) || n < min))
      throw new InvalidArgumentError(`expected comma-separated integers ≥ ${min} (e.g. 10,20).`);
    return nums;
  };
}

/**
 * Parser of `--checkpoint-blocks [k]`'s value: `all` for every block, `none` for none, or k, the
 * number of blocks recomputed from the first (0 = none). The bare flag means all.
 */
export function blockCount(value: string): boolean | number {
  const v = value.trim().toLowerCase();
  if (v === "all") return true;
  if (v === "none") return false;
  const n = Number(v);
  if (v === "" || !Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError("expected all, none or a number of blocks ≥ 0 (e.g. 8).");
  return n === 0 ? false : n;
}

/** Parser of "a,b" with 0 < a ≤ b ≤ 1. */
export function fractionPair(value: string): [number, number] {
  const [a, b] = value.split(",").map(Number);
  if (!(a > 0 && b >= a && b <= 1) || value.split(",").length !== 2)
    throw new InvalidArgumentError("expected two fractions a,b with 0 < a ≤ b ≤ 1 (e.g. 0.2,1).");
  return [a, b];
}

const channelsOption = () =>
  new Option(
    "--channels <n>",
    "network input channels: 3 (grey images become RGB, as SiT) or 1 (native grey)",
  ).argParser((v) => {
    if (v !== "1" && v !== "3") throw new InvalidArgumentError("Allowed choices are 1, 3.");
    return Number(v) as 1 | 3;
  });

/** `--download` of every command that reads a named dataset. */
const DOWNLOAD_OPTION = [
  "--download",
  "download the named dataset into --data-dir first (checksums verified; files already there are kept)",
] as const;

/** `--skip-corrupt` of every command that reads image files. */
const SKIP_CORRUPT_OPTION = [
  "--skip-corrupt",
  "skip image files that fail to decode (listed at the end) instead of stopping",
] as const;

/** `--backend`. */
export function addBackend(cmd: Command): Command {
  return cmd.addOption(
    new Option(
      "--backend <name>",
      "tfjs backend (auto: tensorflow → webgpu → wasm → cpu; or SIT_BACKEND)",
    ).choices(BACKEND_CHOICES),
  );
}

/** Flags of `sit pretrain` and where each one goes in the config (dotted path). */
const PRETRAIN_FLAGS: [flag: string, path: string][] = [
  ["recipe", "recipe"],
  ["backend", "backend"],
  ["out", "out"],
  ["dataset", "data.dataset"],
  ["dataDir", "data.dataDir"],
  ["download", "data.download"],
  ["skipCorrupt", "data.skipCorrupt"],
  ["channels", "data.channels"],
  ["normalize", "data.normalize"],
  ["interpolation", "data.interpolation"],
  ["cropScale", "data.cropScale"],
  ["limit", "data.limit"],
  ["preset", "config.backbone.preset"],
  ["imgSize", "config.backbone.imgSize"],
  ["patchSize", "config.backbone.patchSize"],
  ["embedDim", "config.backbone.embedDim"],
  ["depth", "config.backbone.depth"],
  ["heads", "config.backbone.numHeads"],
  ["dropPath", "config.backbone.dropPathRate"],
  ["checkpointBlocks", "config.backbone.checkpointBlocks"],
  ["projHidden", "config.projection.hidden"],
  ["projOut", "config.projection.outDim"],
  ["batchSize", "config.optim.batchSize"],
  ["epochs", "config.optim.epochs"],
  ["warmupEpochs", "config.optim.warmupEpochs"],
  ["lr", "config.optim.baseLr"],
  ["minLr", "config.optim.minLr"],
  ["weightDecay", "config.optim.weightDecay"],
  ["weightDecayEnd", "config.optim.weightDecayEnd"],
  ["lambda", "config.lambda"],
  ["masking", "config.masking"],
  ["attentionMode", "config.attentionMask.mode"],
  ["attentionGroups", "config.attentionMask.groups"],
  ["localCrops", "config.multiCrop.nLocal"],
  ["seed", "config.seed"],
  ["precision", "config.precision"],
  ["steps", "train.steps"],
  ["checkpointEvery", "train.checkpointEverySteps"],
  ["checkpointEveryEpochs", "train.checkpointEveryEpochs"],
  ["keepLast", "train.keepLast"],
  ["maxMinutes", "train.maxMinutes"],
  ["tensorboard", "train.tensorboard"],
  ["tbImagesEvery", "train.tensorboardImagesEvery"],
  ["knnEvery", "monitor.knnEvery"],
  ["knnK", "monitor.k"],
  ["knnSamples", "monitor.samples"],
  ["knnWeights", "monitor.weights"],
];

/** Every option of `sit pretrain` (config file, data, model, optimisation, run, monitor). */
export function addPretrainOptions(cmd: Command): Command {
  cmd
    .option("-c, --config <file>", "JSON config file (see the README); flags override it")
    .addOption(
      new Option(
        "-r, --recipe <name>",
        `${RECIPE_NAMES.join(" | ")} (${defaultText("recipe")})`,
      ).choices(RECIPE_NAMES),
    )
    .option(
      "-d, --dataset <name|path>",
      `dataset: ${DATASET_HELP} (${defaultText("data.dataset")})`,
    )
    .option("--data-dir <dir>", "folder of the named dataset's files")
    .option(...DOWNLOAD_OPTION)
    .option(...SKIP_CORRUPT_OPTION)
    .addOption(channelsOption())
    .addOption(
      new Option(
        "--normalize <stats>",
        `input normalisation (${defaultText("data.normalize")}, as SiT)`,
      ).choices(["imagenet", "dataset", "none"]),
    )
    .addOption(
      new Option(
        "--interpolation <mode>",
        `crop resampling (${defaultText("data.interpolation")})`,
      ).choices(["bicubic", "bilinear"]),
    )
    .option(
      "--crop-scale <a,b>",
      `RandomResizedCrop area range (${defaultText("data.cropScale")})`,
      fractionPair,
    )
    .option("--limit <n>", "use only the first n pretraining images", int(1))
    .addOption(
      new Option("--preset <name>", `ViT size preset (default ${defaultPreset()})`).choices([
        "tiny",
        "small",
        "base",
      ]),
    )
    .option("--img-size <px>", `input side (${defaultText("config.backbone.imgSize")})`, int(1))
    .option("--patch-size <px>", `patch side (${defaultText("config.backbone.patchSize")})`, int(1))
    .option("--embed-dim <n>", "token width D (overrides the preset)", int(1))
    .option("--depth <n>", "number of blocks (overrides the preset)", int(1))
    .option("--heads <n>", "attention heads (overrides the preset)", int(1))
    .option(
      "--drop-path <rate>",
      `student stochastic depth (${defaultText("config.backbone.dropPathRate")})`,
      num(0, 0.99),
    )
    .option(
      "--checkpoint-blocks [k]",
      "recompute blocks in the backward pass (less memory; needed on wasm for deep models): all of them, or the first k (all | none | k)",
      blockCount,
    )
    .option(
      "--proj-hidden <n>",
      `projection head hidden width (${defaultText("config.projection.hidden")})`,
      int(1),
    )
    .option(
      "--proj-out <n>",
      `projection head output width (${defaultText("config.projection.outDim")})`,
      int(1),
    )
    .option(
      "-b, --batch-size <n>",
      `images per step (${defaultText("config.optim.batchSize")})`,
      int(1),
    )
    .option(
      "-e, --epochs <n>",
      `epochs of the schedules (${defaultText("config.optim.epochs")})`,
      int(1),
    )
    .option("--steps <n>", "stop after this many steps in all", int(1))
    .option(
      "--max-minutes <m>",
      "time budget: stop with a checkpoint after m minutes of this run",
      num(0.01),
    )
    .option(
      "--warmup-epochs <n>",
      `linear lr warm-up epochs (${defaultText("config.optim.warmupEpochs")})`,
      int(0),
    )
    .option(
      "--lr <x>",
      `base learning rate, scaled by batch/256 (${defaultText("config.optim.baseLr")})`,
      num(0),
    )
    .option("--min-lr <x>", `final learning rate (${defaultText("config.optim.minLr")})`, num(0))
    .option(
      "--weight-decay <x>",
      `initial weight decay (${defaultText("config.optim.weightDecay")})`,
      num(0),
    )
    .option(
      "--weight-decay-end <x>",
      `final weight decay (${defaultText("config.optim.weightDecayEnd")})`,
      num(0),
    )
    .option(
      "--lambda <x>",
      `λ in L = Lc + λ·Lr (sit; ${defaultText("config.lambda")}, SiT's README: 5 for small datasets)`,
      num(0),
    )
    .addOption(
      new Option(
        "--masking <kind>",
        "sit: gmml (GMML's random blocks, the default) or attention (mask what the teacher's CLS attends to, AttMask)",
      ).choices(["gmml", "attention"]),
    )
    .addOption(
      new Option(
        "--attention-mode <mode>",
        "with --masking attention: high (mask the most attended patches, the default) or hint (reveal a few of them again)",
      ).choices(["high", "hint"]),
    )
    .addOption(
      new Option(
        "--attention-groups <kind>",
        "with --masking attention: token (token-aligned, the default) or pixel (GMML-style pixel groups)",
      ).choices(["token", "pixel"]),
    )
    .option(
      "--local-crops <n>",
      "dino: local crops per image besides the 2 global ones (DINO: 8)",
      int(0),
    )
    .option(
      "--seed <n>",
      `seed of weights, augmentations and masks (${defaultText("config.seed")})`,
      int(0),
    )
    .addOption(
      new Option(
        "--precision <p>",
        `sit: f32 or mixed-f16 (f16 GEMMs, f32 master weights, dynamic loss scaling; webgpu with shader-f16) (${defaultText("config.precision")})`,
      ).choices(["f32", "mixed-f16"]),
    );
  addBackend(cmd);
  return cmd
    .option("-o, --out <dir>", `output folder (${defaultText("out")})`)
    .option(
      "--resume [checkpoint]",
      "continue from <out>/checkpoints, or from the given checkpoint file/folder",
    )
    .option("--checkpoint-every <steps>", "also checkpoint every this many steps", int(1))
    .option(
      "--checkpoint-every-epochs <n>",
      "checkpoint every this many epochs (default 1)",
      int(1),
    )
    .option(
      "--keep-last <k>",
      `keep the newest k checkpoints, 0 = all (${defaultText("train.keepLast")})`,
      int(0),
    )
    .option("--no-tensorboard", "do not write TensorBoard event files")
    .option(
      "--tb-images-every <steps>",
      "reconstruction and attention pictures in TensorBoard every this many steps (0 = none; default: once an epoch)",
      int(0),
    )
    .option(
      "--knn-every <epochs>",
      "online k-NN monitor on the held-out split every this many epochs",
      int(1),
    )
    .option("--knn-k <k>", `neighbours of the monitor (${defaultText("monitor.k")})`, int(1))
    .option("--knn-samples <n>", "at most n images per split for the monitor", int(1))
    .addOption(
      new Option("--knn-weights <which>", "monitor the student (default) or the teacher").choices([
        "student",
        "teacher",
      ]),
    )
    .option("--print-config", "print the resolved config as JSON and exit")
    .option("-q, --quiet", "no progress output");
}

/**
 * The pretraining config of a command line: defaults < `<out>/run.json` (when resuming without
 * `--config`) < the `--config` file < flags given on the command line.
 */
export function resolvePretrainConfig(cmd: Command): PretrainConfig {
  const opts = cmd.opts() as Record<string, unknown>;
  const given = (flag: string) => cmd.getOptionValueSource(flag) === "cli";
  const file = typeof opts.config === "string" ? readJsonConfig(opts.config) : {};
  let base: Record<string, unknown> = {};
  if (opts.resume !== undefined && !opts.config) {
    const out = (given("out") ? opts.out : (file.out ?? "runs/sit")) as string;
    const saved = join(out, "run.json");
    if (existsSync(saved)) base = readJsonConfig(saved);
  }
  const flags: Record<string, unknown> = {};
  for (const [flag, path] of PRETRAIN_FLAGS) if (given(flag)) setPath(flags, path, opts[flag]);
  const merged = deepMerge(base, file, flags);
  return parseWith(pretrainSchema, merged, "config");
}

/** Options every evaluation command shares: where the network and data come from. */
export function addSourceOptions(cmd: Command): Command {
  cmd
    .option("--checkpoint <path>", "checkpoint file or run folder of `sit pretrain`")
    .option(
      "--random-init",
      "evaluate a randomly initialised network instead (the baseline; architecture from --config)",
    )
    .option(
      "-c, --config <file>",
      "pretraining config JSON that defines the --random-init architecture and data",
    )
    .option(
      "--seed <n>",
      `seed of the random initialisation / of the protocol (${defaultText("config.seed")})`,
      int(0),
    )
    .addOption(
      new Option("--weights <which>", "student (default) or teacher")
        .choices(["student", "teacher"])
        .default("student"),
    )
    .option("-d, --dataset <name|path>", `evaluation dataset (default: the run's): ${DATASET_HELP}`)
    .option("--data-dir <dir>", "folder of the named dataset's files")
    .option(...DOWNLOAD_OPTION)
    .option(...SKIP_CORRUPT_OPTION)
    .option(
      "-o, --out <dir>",
      "results folder (default: the checkpoint's run folder, else runs/eval)",
    );
  return addBackend(cmd);
}

/** Feature-extraction options of the frozen-feature protocols. */
export function addFeatureOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--pool <how>", "features: CLS token, mean patch token, or both")
        .choices(["cls", "mean", "cls+mean"])
        .default("cls"),
    )
    .option("--extract-batch <n>", "images per forward pass", int(1), 128)
    .option("--train-limit <n>", "at most n training images (evenly spaced)", int(1))
    .option("--test-limit <n>", "at most n test images (evenly spaced)", int(1))
    .option("--no-cache", "do not cache features in <out>/feature-cache")
    .option("-q, --quiet", "no progress output");
}

/** The source part of an evaluation command's options. */
export function sourceOptions(cmd: Command) {
  const o = cmd.opts() as Record<string, unknown>;
  let randomInit: PretrainConfig | undefined;
  if (o.randomInit) {
    const file = typeof o.config === "string" ? readJsonConfig(o.config) : {};
    const seeded = o.seed !== undefined ? deepMerge(file, { config: { seed: o.seed } }) : file;
    randomInit = parseWith(pretrainSchema, seeded, "config");
  } else if (o.config !== undefined)
    throw new UsageError(
      "--config: only used with --random-init (a checkpoint carries its own config)",
    );
  return {
    ...(typeof o.checkpoint === "string" ? { checkpoint: o.checkpoint } : {}),
    ...(randomInit ? { randomInit } : {}),
    weights: o.weights as "student" | "teacher",
    data: {
      ...(o.dataset !== undefined ? { dataset: o.dataset as string } : {}),
      ...(o.dataDir !== undefined ? { dataDir: o.dataDir as string } : {}),
      ...(o.download ? { download: true } : {}),
      ...(o.skipCorrupt ? { skipCorrupt: true } : {}),
    },
    ...(typeof o.backend === "string" ? { backend: o.backend } : {}),
    ...(typeof o.out === "string" ? { out: o.out } : {}),
  };
}

/** The feature part of an evaluation command's options. */
export function featureOptionsOf(cmd: Command) {
  const o = cmd.opts() as Record<string, unknown>;
  return {
    pool: o.pool as "cls" | "mean" | "cls+mean",
    batchSize: o.extractBatch as number,
    ...(o.trainLimit !== undefined ? { trainLimit: o.trainLimit as number } : {}),
    ...(o.testLimit !== undefined ? { testLimit: o.testLimit as number } : {}),
    cache: o.cache !== false,
  };
}
