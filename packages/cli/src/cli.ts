import {
  FEW_SHOT_DEFAULTS,
  FINE_TUNE_DEFAULTS,
  KNN_DEFAULTS,
  LINEAR_PROBE_DEFAULTS,
} from "@sit/eval";
import { Command, CommanderError, Option } from "commander";
import {
  addBackend,
  addFeatureOptions,
  addPretrainOptions,
  addSourceOptions,
  featureOptionsOf,
  fractionPair,
  int,
  intList,
  num,
  resolvePretrainConfig,
  sourceOptions,
} from "./cli-options";
import { attention } from "./commands/attention";
import { exportWeights } from "./commands/export";
import { exportSitTorch, importSitTorch } from "./commands/sit-torch";
import { finetune } from "./commands/finetune";
import { formatInfo, info } from "./commands/info";
import { fewshot, knn } from "./commands/knn";
import { linear } from "./commands/linear";
import { pretrain, pretrainSummaryLine } from "./commands/pretrain";
import { reconstruct } from "./commands/reconstruct";
import { formatDefault } from "./help";
import { printableConfig } from "./resolved-config";
import { type CliIO, EXIT, UsageError, processIO } from "./io";

/** Version of the `sit` command (the @sit/cli package). */
export const CLI_VERSION = "0.1.0";

type Action = (cmd: Command, io: CliIO) => Promise<number>;

/** Options of a picture command, from the command line. */
function pictureOptions(cmd: Command) {
  const o = cmd.opts() as Record<string, unknown>;
  if (typeof o.checkpoint !== "string")
    throw new UsageError("--checkpoint: required (a checkpoint file or run folder)");
  return {
    checkpoint: o.checkpoint,
    out: o.out as string,
    split: o.split as "train" | "test",
    count: o.count as number,
    weights: o.weights as "student" | "teacher",
    ...(typeof o.backend === "string" ? { backend: o.backend } : {}),
    data: {
      ...(o.dataset !== undefined ? { dataset: o.dataset as string } : {}),
      ...(o.dataDir !== undefined ? { dataDir: o.dataDir as string } : {}),
    },
  };
}

function addPictureOptions(cmd: Command, defaultOut: string): Command {
  cmd
    .requiredOption("--checkpoint <path>", "checkpoint file or run folder of `sit pretrain`")
    .option("-o, --out <file>", `PNG to write (default ${defaultOut})`, defaultOut)
    .option("-n, --count <n>", "images (rows), evenly spaced over the split", int(1), 8)
    .addOption(
      new Option("--split <name>", "split the images come from")
        .choices(["train", "test"])
        .default("test"),
    )
    .addOption(
      new Option("--weights <which>", "student (default) or teacher")
        .choices(["student", "teacher"])
        .default("student"),
    )
    .option("-d, --dataset <name|path>", "images from this dataset instead of the run's")
    .option("--data-dir <dir>", "folder of the named dataset's files")
    .option("-q, --quiet", "no progress output");
  return addBackend(cmd);
}

/** Build the `sit` program; actions report their exit code through `setCode`. */
function buildProgram(io: CliIO, setCode: (code: number) => void): Command {
  const program = new Command("sit")
    .description(
      "SiT.js: self-supervised Vision Transformers (SiT, GMML, MoCo v3, MAE) on TensorFlow.js",
    )
    .version(CLI_VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  const command = (name: string, description: string, action: Action) => {
    const cmd = program
      .command(name)
      .description(description)
      .exitOverride()
      .showHelpAfterError(`(run sit ${name} --help for usage)`)
      .configureOutput({ writeOut: io.out, writeErr: io.err });
    cmd.action(async () => {
      const quiet = cmd.opts().quiet === true;
      setCode(await action(cmd, quiet ? { ...io, quiet: true } : io));
    });
    return cmd;
  };

  addPretrainOptions(
    command(
      "pretrain",
      "self-supervised pretraining (SiT by default) with checkpoints, metrics and resume",
      async (cmd, cio) => {
        const config = resolvePretrainConfig(cmd);
        const o = cmd.opts() as { resume?: string | boolean; printConfig?: boolean };
        if (o.printConfig) {
          cio.out(`${JSON.stringify(printableConfig(config, cio), null, 2)}\n`);
          return EXIT.ok;
        }
        const r = await pretrain(config, cio, { resume: o.resume ?? false });
        cio.out(`${pretrainSummaryLine(r)}\n`);
        if (r.checkpoint) cio.out(`checkpoint: ${r.checkpoint}\n`);
        if (r.reason === "signal") {
          cio.err("interrupted: checkpoint written; run again with --resume to continue\n");
          return r.signal === "SIGTERM" ? EXIT.terminated : EXIT.interrupted;
        }
        if (r.reason === "time-budget")
          cio.err(
            "stopped at its time budget (--max-minutes): checkpoint written; run again with --resume to continue\n",
          );
        return r.reason === "aborted" ? EXIT.interrupted : EXIT.ok;
      },
    ),
  );

  addPictureOptions(
    command(
      "reconstruct",
      "PNG grid: original | GMML-corrupted | reconstruction | filled in (the reconstruction in the corrupted pixels only)",
      async (cmd, cio) => {
        const seed = cmd.opts().seed as number;
        const r = await reconstruct({ ...pictureOptions(cmd), seed }, cio);
        cio.out(`${r.path}\n`);
        return EXIT.ok;
      },
    ).option("--seed <n>", "seed of the corruption drawn for the picture", int(0), 0),
    "reconstruction.png",
  );

  addPictureOptions(
    command(
      "attention",
      "PNG of the CLS token's attention per head (last block by default)",
      async (cmd, cio) => {
        const block = cmd.opts().block as number | undefined;
        const r = await attention(
          { ...pictureOptions(cmd), ...(block !== undefined ? { block } : {}) },
          cio,
        );
        cio.out(`${r.path}\n`);
        return EXIT.ok;
      },
    ).option("--block <i>", "block index (negative counts from the end; default -1)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n))
        throw new UsageError(`--block: expected an integer, got ${JSON.stringify(v)}`);
      return n;
    }),
    "attention.png",
  );

  addBackend(
    command(
      "export",
      "backbone weights to safetensors with timm names (PyTorch layouts), or the whole training state for PyTorch (sit-torch)",
      async (cmd, cio) => {
        const o = cmd.opts() as Record<string, string>;
        if (o.format === "sit-torch") {
          const dir = o.out === "backbone.safetensors" ? "sit-torch" : o.out;
          const r = await exportSitTorch(
            {
              checkpoint: o.checkpoint,
              out: dir,
              ...(o.worldSize !== undefined ? { worldSize: Number(o.worldSize) } : {}),
              ...(o.backend ? { backend: o.backend } : {}),
            },
            cio,
          );
          cio.out(`${r.path}\n`);
          return EXIT.ok;
        }
        const r = await exportWeights(
          {
            checkpoint: o.checkpoint,
            out: o.out,
            weights: o.weights as "student" | "teacher",
            format: o.format as "timm" | "sit",
            ...(o.backend ? { backend: o.backend } : {}),
          },
          cio,
        );
        cio.out(`${r.path}\n`);
        return EXIT.ok;
      },
    )
      .requiredOption("--checkpoint <path>", "checkpoint file or run folder of `sit pretrain`")
      .option(
        "-o, --out <file>",
        "safetensors file to write (sit-torch: a folder, default sit-torch)",
        "backbone.safetensors",
      )
      .addOption(
        new Option("--weights <which>", "student (default) or teacher")
          .choices(["student", "teacher"])
          .default("student"),
      )
      .addOption(
        new Option(
          "--format <names>",
          "timm: the ViT backbone with timm names; sit: the whole SiT network with the SiT code's names; sit-torch: the whole training state for tools/scale-out (docs/scale-out.md)",
        )
          .choices(["timm", "sit", "sit-torch"])
          .default("timm"),
      )
      .option(
        "--world-size <n>",
        "sit-torch: PyTorch processes the batch is split over (args.batch_size is per process)",
        int(1),
      )
      .option("-q, --quiet", "no progress output"),
  );

  addBackend(
    command(
      "import",
      "a training state from PyTorch (sit-torch, from tools/scale-out/from_torch.py) as a checkpoint of a run folder",
      async (cmd, cio) => {
        const o = cmd.opts() as {
          from: string;
          out: string;
          stepsPerEpoch?: number;
          backend?: string;
        };
        const r = await importSitTorch(
          {
            from: o.from,
            out: o.out,
            ...(o.stepsPerEpoch !== undefined ? { stepsPerEpoch: o.stepsPerEpoch } : {}),
            ...(o.backend ? { backend: o.backend } : {}),
          },
          cio,
        );
        cio.out(`${r.path}\n`);
        return EXIT.ok;
      },
    )
      .requiredOption("--from <folder>", "sit-torch folder (state.json + state.safetensors)")
      .requiredOption("--out <folder>", "run folder: the checkpoint goes to <out>/checkpoints")
      .option(
        "--steps-per-epoch <n>",
        "batches per epoch, for an official checkpoint that does not record it (default step / epoch)",
        int(1),
      )
      .option("-q, --quiet", "no progress output"),
  );

  addBackend(
    command("info", "backend, versions and devices", async (cmd, cio) => {
      const o = cmd.opts() as { backend?: string; json?: boolean };
      const r = await info(o.backend ? { backend: o.backend } : {}, cio);
      cio.out(o.json ? `${JSON.stringify(r, null, 2)}\n` : formatInfo(r));
      return EXIT.ok;
    }).option("--json", "print JSON"),
  );

  addFeatureOptions(
    addSourceOptions(
      command(
        "knn",
        "weighted k-NN accuracy of frozen features (DINO protocol)",
        async (cmd, cio) => {
          const o = cmd.opts() as { ks: number[]; temperature: number };
          await knn(
            {
              ...sourceOptions(cmd),
              ...featureOptionsOf(cmd),
              ks: o.ks,
              temperature: o.temperature,
            },
            cio,
          );
          return EXIT.ok;
        },
      )
        .option("-k, --ks <list>", "neighbour counts", intList(1), [...KNN_DEFAULTS.ks])
        .option("--temperature <T>", "vote temperature", num(1e-6), KNN_DEFAULTS.temperature),
    ),
  );

  addFeatureOptions(
    addSourceOptions(
      command("linear", "linear probe on frozen features", async (cmd, cio) => {
        const o = cmd.opts() as Record<string, unknown>;
        await linear(
          {
            ...sourceOptions(cmd),
            ...featureOptionsOf(cmd),
            epochs: o.epochs as number,
            ...(o.lr !== undefined ? { lr: o.lr as number } : {}),
            optimizer: o.optimizer as "sgd" | "adamw",
            probeBatchSize: o.batchSize as number,
            weightDecay: o.weightDecay as number,
            batchNorm: o.bn === true,
            ...(o.valFraction !== undefined ? { valFraction: o.valFraction as number } : {}),
            seed: (o.seed as number | undefined) ?? 0,
            ...(typeof o.confusion === "string" ? { confusionPng: o.confusion } : {}),
          },
          cio,
        );
        return EXIT.ok;
      })
        .option("-e, --epochs <n>", "epochs", int(1), LINEAR_PROBE_DEFAULTS.epochs)
        .option(
          "--lr <x>",
          `peak learning rate (default: sgd ${formatDefault(LINEAR_PROBE_DEFAULTS.lr.sgd)}, adamw ${formatDefault(LINEAR_PROBE_DEFAULTS.lr.adamw)})`,
          num(0),
        )
        .addOption(
          new Option("--optimizer <name>", "sgd (DINO) or adamw")
            .choices(["sgd", "adamw"])
            .default(LINEAR_PROBE_DEFAULTS.optimizer),
        )
        .option("-b, --batch-size <n>", "probe mini-batch", int(1), LINEAR_PROBE_DEFAULTS.batchSize)
        .option(
          "--weight-decay <x>",
          "weight decay of the weight matrix",
          num(0),
          LINEAR_PROBE_DEFAULTS.weightDecay,
        )
        .option("--bn", "BatchNorm without affine before the linear layer (MAE)")
        .option(
          "--val-fraction <f>",
          "hold out this fraction of training rows to select the epoch",
          num(0, 1),
        )
        .option(
          "--confusion <png>",
          "where to write the test split's confusion matrix (default <out>/linear-confusion.png)",
        ),
    ),
  );

  addSourceOptions(
    command(
      "finetune",
      "fine-tune the backbone with a classification head (DeiT-style)",
      async (cmd, cio) => {
        const o = cmd.opts() as Record<string, unknown>;
        const numbers = [
          "lr",
          "minLr",
          "warmupEpochs",
          "weightDecay",
          "labelSmoothing",
          "layerDecay",
        ] as const;
        await finetune(
          {
            ...sourceOptions(cmd),
            epochs: o.epochs as number,
            batchSize: o.batchSize as number,
            ...Object.fromEntries(
              numbers.filter((k) => o[k] !== undefined).map((k) => [k, o[k] as number]),
            ),
            mixup: o.mixup === true,
            randAugment: o.randAugment === true,
            head: o.head as "linear" | "sit",
            cropScale: o.cropScale as [number, number],
            seed: (o.seed as number | undefined) ?? 0,
            ...(o.trainLimit !== undefined ? { trainLimit: o.trainLimit as number } : {}),
            ...(o.testLimit !== undefined ? { testLimit: o.testLimit as number } : {}),
            keepLast: o.keepLast as number,
          },
          cio,
        );
        return EXIT.ok;
      },
    )
      .option("-e, --epochs <n>", "epochs", int(1), FINE_TUNE_DEFAULTS.epochs)
      .option("-b, --batch-size <n>", "images per step", int(1), FINE_TUNE_DEFAULTS.batchSize)
      .option(
        "--lr <x>",
        `peak learning rate (default ${formatDefault(FINE_TUNE_DEFAULTS.lrPer512)}·batch/512)`,
        num(0),
      )
      .option(
        "--min-lr <x>",
        `final learning rate (default ${formatDefault(FINE_TUNE_DEFAULTS.minLr)})`,
        num(0),
      )
      .option(
        "--warmup-epochs <n>",
        `warm-up epochs (default ${FINE_TUNE_DEFAULTS.warmupEpochs})`,
        num(0),
      )
      .option(
        "--weight-decay <x>",
        `AdamW weight decay (default ${FINE_TUNE_DEFAULTS.weightDecay})`,
        num(0),
      )
      .option(
        "--label-smoothing <x>",
        `label smoothing (default ${FINE_TUNE_DEFAULTS.labelSmoothing})`,
        num(0, 0.99),
      )
      .option(
        "--layer-decay <x>",
        `layer-wise lr decay, 1 = off (default ${FINE_TUNE_DEFAULTS.layerDecay})`,
        num(0.01, 1),
      )
      .option("--mixup", "Mixup 0.8 / CutMix 1.0 (DeiT)")
      .option("--rand-augment", "RandAugment m9-mstd0.5 (DeiT)")
      .addOption(
        new Option("--head <kind>", "linear (DeiT) or sit (CLS + mean patch MLP)")
          .choices(["linear", "sit"])
          .default("linear"),
      )
      .option("--crop-scale <a,b>", "RandomResizedCrop area range", fractionPair, [0.08, 1])
      .option("--train-limit <n>", "at most n training images (evenly spaced)", int(1))
      .option("--test-limit <n>", "at most n test images (evenly spaced)", int(1))
      .option("--keep-last <k>", "keep the newest k epoch checkpoints, 0 = all", int(0), 2)
      .option("-q, --quiet", "no progress output"),
  );

  addFeatureOptions(
    addSourceOptions(
      command("fewshot", "N-way K-shot episodes on frozen features", async (cmd, cio) => {
        const o = cmd.opts() as Record<string, unknown>;
        await fewshot(
          {
            ...sourceOptions(cmd),
            ...featureOptionsOf(cmd),
            ways: o.ways as number,
            shots: o.shots as number[],
            queries: o.queries as number,
            episodes: o.episodes as number,
            seed: (o.seed as number | undefined) ?? 0,
            split: o.split as "train" | "test",
          },
          cio,
        );
        return EXIT.ok;
      })
        .option("--ways <n>", "classes per episode", int(2), FEW_SHOT_DEFAULTS.ways)
        // The CLI reports 1- and 5-shot by default (the library's default is one shot count).
        .option("--shots <list>", "support images per class", intList(1), [1, 5])
        .option("--queries <n>", "query images per class", int(1), FEW_SHOT_DEFAULTS.queries)
        .option("--episodes <n>", "episodes", int(1), FEW_SHOT_DEFAULTS.episodes)
        .addOption(
          new Option("--split <name>", "split the episodes come from")
            .choices(["train", "test"])
            .default("test"),
        ),
    ),
  );
  return program;
}

/**
 * Run the `sit` command line (`argv` without the node and script paths) and resolve with the
 * exit code: 0 success, 1 failure, 2 usage error, 130 / 143 stopped by SIGINT / SIGTERM
 * (checkpoint written). Never
 * calls `process.exit`; output goes to `io` (the process's streams by default).
 */
export async function runCli(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    if (argv.length === 0) {
      io.err(program.helpInformation());
      return EXIT.usage;
    }
    await program.parseAsync([...argv], { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version")
        return EXIT.ok;
      return EXIT.usage; // commander already printed the message
    }
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}\n(run with --help for usage)\n`);
      return EXIT.usage;
    }
    const e = err as Error;
    io.err(`error: ${e?.name ?? "Error"}: ${e?.message ?? String(err)}\n`);
    if (process.env.SIT_DEBUG) io.err(`${e?.stack ?? ""}\n`);
    return EXIT.failure;
  }
}
