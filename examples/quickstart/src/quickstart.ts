import { existsSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CliIO,
  type KnnCommandResult,
  type PretrainConfig,
  type PretrainResult,
  knn,
  pretrain,
  pretrainSchema,
  reconstruct,
} from "@sit/cli";

/** This example's folder (config.json, runs/). */
export const EXAMPLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Options of {@link runQuickstart}. */
export interface QuickstartOptions {
  /** Every stage in a few steps on a few images (CI): 128 images, 4 steps, small k-NN splits. */
  smoke?: boolean;
  /** Output folder (default `<example>/runs/quickstart`, or `…/quickstart-smoke` with smoke). Emptied first. */
  out?: string;
  /** Override the config's backend. */
  backend?: string;
  /** Where the summary goes (default stdout). */
  log?: (line: string) => void;
  /** Where progress goes (default the CLI's: stderr). */
  io?: CliIO;
}

/** What the quick start measured. */
export interface QuickstartResult {
  config: PretrainConfig;
  pretrain: PretrainResult;
  /** k-NN top-1 (fraction) of the random initialisation and of the pretrained network. */
  knn: { k: number; random: number; pretrained: number; trainRows: number; testRows: number };
  reconstruction: { path: string; maskedL1: number };
  seconds: { total: number; pretrain: number; knnRandom: number; knnPretrained: number };
}

/** The example's pretraining config, shortened to a few steps with `smoke`. */
export function quickstartConfig(options: {
  smoke?: boolean;
  out: string;
  backend?: string;
}): PretrainConfig {
  const file = JSON.parse(readFileSync(join(EXAMPLE_DIR, "config.json"), "utf8")) as Record<
    string,
    unknown
  >;
  const config = pretrainSchema.parse({ ...file, out: options.out });
  if (options.backend) config.backend = options.backend as PretrainConfig["backend"];
  if (!options.smoke) return config;
  const recipe = config.config as { optim: Record<string, unknown> };
  return {
    ...config,
    data: { ...config.data, limit: 128 },
    config: { ...recipe, optim: { ...recipe.optim, batchSize: 32, epochs: 1, warmupEpochs: 0 } },
    train: { ...config.train, tensorboard: false },
  };
}

const minutes = (s: number) => `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
const pct = (f: number) => `${(100 * f).toFixed(1)} %`;

/**
 * The quick start: k-NN accuracy of a randomly initialised ViT (the exact weights pretraining
 * starts from), SiT pretraining on the bundled Fashion-MNIST subset, k-NN accuracy of the
 * pretrained network with the same protocol (DINO's weighted k-NN, k = 20, CLS features, the
 * 6,000 training images as memory, the 1,000 test images classified), and the reconstruction
 * picture. Prints a summary and returns the numbers.
 */
export async function runQuickstart(options: QuickstartOptions = {}): Promise<QuickstartResult> {
  const t0 = Date.now();
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const io: CliIO = options.io ?? {
    out: () => {},
    err: (t) => process.stderr.write(t),
    progressStream: process.stderr,
  };
  const out = resolve(
    options.out ?? join(EXAMPLE_DIR, "runs", options.smoke ? "quickstart-smoke" : "quickstart"),
  );
  if (existsSync(out)) rmSync(out, { recursive: true, force: true });
  const config = quickstartConfig({ smoke: options.smoke, out, backend: options.backend });
  const b = (config.config as { backbone: Record<string, number> }).backbone;
  const o = (config.config as { optim: Record<string, number> }).optim;
  const k = 20;
  const knnLimits = options.smoke ? { trainLimit: 200, testLimit: 100 } : {};
  const evalOptions = {
    weights: "student" as const,
    ks: [k],
    temperature: 0.07,
    pool: "cls" as const,
    batchSize: 256,
    cache: false,
    ...knnLimits,
  };

  log(
    `SiT.js quick start${options.smoke ? " (smoke: a few steps)" : ""}: SiT pretraining on the bundled Fashion-MNIST subset`,
  );
  log(
    `  ViT D ${b.embedDim}, depth ${b.depth}, ${b.numHeads} heads, patch ${b.patchSize} at ${b.imgSize} px, ${config.data.channels} channel; λ = ${(config.config as { lambda: number }).lambda}; batch ${o.batchSize}; ${o.epochs} epochs${config.train.maxMinutes ? ` (budget ${config.train.maxMinutes} min)` : ""}; backend ${config.backend}`,
  );

  log("[1/4] k-NN of the randomly initialised network (the weights pretraining starts from)");
  let t = Date.now();
  const random: KnnCommandResult = await knn(
    { ...evalOptions, randomInit: config, backend: config.backend, out: join(out, "random-init") },
    io,
  );
  const knnRandomSec = (Date.now() - t) / 1000;

  log("[2/4] SiT pretraining");
  t = Date.now();
  const pre = await pretrain(config, io);
  const pretrainSec = (Date.now() - t) / 1000;
  if (!pre.checkpoint) throw new Error(`pretraining wrote no checkpoint (reason ${pre.reason})`);

  log("[3/4] k-NN of the pretrained network (same protocol)");
  t = Date.now();
  const trained = await knn(
    { ...evalOptions, checkpoint: pre.checkpoint, backend: config.backend },
    io,
  );
  const knnPretrainedSec = (Date.now() - t) / 1000;

  log("[4/4] reconstruction picture");
  const png = join(out, "reconstruction.png");
  const rec = await reconstruct(
    {
      checkpoint: pre.checkpoint,
      out: png,
      split: "test",
      count: 8,
      weights: "student",
      seed: 0,
      backend: config.backend,
    },
    io,
  );

  const total = (Date.now() - t0) / 1000;
  const r0 = random.results[0];
  const r1 = trained.results[0];
  const epochs = (pre.steps / pre.stepsPerEpoch).toFixed(pre.steps % pre.stepsPerEpoch ? 1 : 0);
  const stop =
    pre.reason === "time-budget" ? `, stopped by the ${config.train.maxMinutes}-minute budget` : "";
  const gain = 100 * (r1.top1 - r0.top1);
  log("");
  log(
    `k-NN accuracy on the bundled test split (k = ${r1.k}, cosine, T = 0.07, CLS features; ${trained.trainRows} training images as memory, ${trained.testRows} test images):`,
  );
  log(`  random init (same architecture)     ${pct(r0.top1)}`);
  log(
    `  SiT-pretrained (${pre.steps} steps, ${epochs} epochs${stop})   ${pct(r1.top1)}   (${gain >= 0 ? "+" : ""}${gain.toFixed(1)} points)`,
  );
  log(
    `Reconstruction (original | GMML-corrupted | reconstruction | filled in): ${relative(process.cwd(), rec.path) || rec.path}`,
  );
  log(`Run folder (checkpoint, metrics.jsonl, TensorBoard events): ${out}`);
  log(
    `Time: ${minutes(total)} in all (pretraining ${minutes(pretrainSec)}, k-NN ${minutes(knnRandomSec)} + ${minutes(knnPretrainedSec)})`,
  );
  return {
    config,
    pretrain: pre,
    knn: {
      k: r1.k,
      random: r0.top1,
      pretrained: r1.top1,
      trainRows: trained.trainRows,
      testRows: trained.testRows,
    },
    reconstruction: { path: rec.path, maskedL1: rec.maskedL1 },
    seconds: {
      total,
      pretrain: pretrainSec,
      knnRandom: knnRandomSec,
      knnPretrained: knnPretrainedSec,
    },
  };
}
