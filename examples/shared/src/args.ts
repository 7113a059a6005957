import { parseArgs } from "node:util";
import { BACKEND_NAMES, type BackendName, ConfigError } from "@sit/core";

/** Command-line options common to every paper example. */
export interface ExampleFlags {
  /** A local copy of the dataset (the reader folder, or the download folder above it). */
  data?: string;
  /** Where to download the dataset when `data` is not given. */
  downloadDir?: string;
  /** Output folder (checkpoints, logs, weights, results.json). */
  out?: string;
  /** Every stage for a few steps on a tiny subset with a tiny model (minutes, not days). */
  smoke: boolean;
  backend?: BackendName | "auto";
  seed?: number;
  pretrainEpochs?: number;
  finetuneEpochs?: number;
  batchSize?: number;
  /** Stop pretraining after this many steps in total. */
  maxSteps?: number;
  /** Skip pretraining: fine-tune from random initialisation (the paper's baseline row). */
  noPretrain: boolean;
  from?: "teacher" | "student";
  printConfig: boolean;
  help: boolean;
}

/** Usage text of an example's `main.ts`. */
export const USAGE = `Options:
  --data DIR             use a local copy of the dataset (no download)
  --download-dir DIR     where to download it (default .sit-cache/datasets/<name>)
  --out DIR              output folder (default runs/<example>)
  --smoke                run every stage for a few steps on a tiny subset with a tiny model
  --backend NAME         tensorflow | webgpu | wasm | cpu | auto (default auto)
  --seed N               seed of everything random (default from the config)
  --pretrain-epochs N    override the pretraining epochs
  --finetune-epochs N    override the fine-tuning epochs
  --batch-size N         override the pretraining batch size
  --max-steps N          stop pretraining after N steps in total
  --no-pretrain          fine-tune from random initialisation (the baseline)
  --from teacher|student which pretrained backbone to evaluate (default student)
  --print-config         print the resolved configuration and exit
  --help                 this text
Re-running with the same --out resumes: finished stages are skipped, pretraining continues
from its last checkpoint.`;

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError(`--${name}: expected an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return n;
}

/** Parse an example's command line (unknown options are errors that name them). */
export function parseExampleArgs(argv: readonly string[]): ExampleFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        data: { type: "string" },
        "download-dir": { type: "string" },
        out: { type: "string" },
        smoke: { type: "boolean", default: false },
        backend: { type: "string" },
        seed: { type: "string" },
        "pretrain-epochs": { type: "string" },
        "finetune-epochs": { type: "string" },
        "batch-size": { type: "string" },
        "max-steps": { type: "string" },
        "no-pretrain": { type: "boolean", default: false },
        from: { type: "string" },
        "print-config": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n${USAGE}`);
  }
  const backend = values.backend as string | undefined;
  if (
    backend !== undefined &&
    backend !== "auto" &&
    !BACKEND_NAMES.includes(backend as BackendName)
  )
    throw new ConfigError(
      `--backend: expected one of ${BACKEND_NAMES.join(", ")} or auto, got ${JSON.stringify(backend)}`,
    );
  const from = values.from as string | undefined;
  if (from !== undefined && from !== "teacher" && from !== "student")
    throw new ConfigError(`--from: expected teacher or student, got ${JSON.stringify(from)}`);
  const seed = values.seed as string | undefined;
  if (seed !== undefined && !Number.isInteger(Number(seed)))
    throw new ConfigError(`--seed: expected an integer, got ${JSON.stringify(seed)}`);
  return {
    data: values.data as string | undefined,
    downloadDir: values["download-dir"] as string | undefined,
    out: values.out as string | undefined,
    smoke: values.smoke === true,
    backend: backend as ExampleFlags["backend"],
    seed: seed === undefined ? undefined : Number(seed),
    pretrainEpochs: int("pretrain-epochs", values["pretrain-epochs"] as string | undefined, 1),
    finetuneEpochs: int("finetune-epochs", values["finetune-epochs"] as string | undefined, 1),
    batchSize: int("batch-size", values["batch-size"] as string | undefined, 2),
    maxSteps: int("max-steps", values["max-steps"] as string | undefined, 1),
    noPretrain: values["no-pretrain"] === true,
    from: from as ExampleFlags["from"],
    printConfig: values["print-config"] === true,
    help: values.help === true,
  };
}
