import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { BACKEND_CHOICES } from "./backend";
import { DATASET_NAMES } from "./datasets";
import { UsageError } from "./io";
import { RECIPE_NAMES } from "./recipes";

const positiveInt = z.number().int().positive();
const probability = z.number().min(0).max(1);

/** Where the images come from and how they are prepared. */
export const dataSchema = z
  .object({
    /** A name (see `DATASET_NAMES`) or a path to a dataset folder. */
    dataset: z.string().min(1).default("fashion-mnist-bundled"),
    /** Folder of the named dataset's files. */
    dataDir: z.string().optional(),
    /** Download the named dataset into `dataDir` first (checksums verified; files already there are kept). */
    download: z.boolean().optional(),
    /** Image-file datasets: skip files that fail to decode (reported at the end) instead of stopping. */
    skipCorrupt: z.boolean().optional(),
    /** Network input channels: 3 (grey images become RGB, as SiT) or 1 (native grey). Default 3. */
    channels: z
      .number()
      .refine((v) => v === 1 || v === 3, { message: "expected 1 or 3" })
      .default(3) as unknown as z.ZodDefault<z.ZodType<1 | 3, z.ZodTypeDef, 1 | 3>>,
    /** Normalisation: ImageNet's statistics (SiT's choice for every dataset), the dataset's own, or none. */
    normalize: z.enum(["imagenet", "dataset", "none"]).default("imagenet"),
    /** Resampling of the random resized crop (SiT: bicubic). */
    interpolation: z.enum(["bicubic", "bilinear"]).default("bicubic"),
    /** RandomResizedCrop area range (SiT: [0.2, 1]). */
    cropScale: z.tuple([z.number().gt(0).lte(1), z.number().gt(0).lte(1)]).default([0.2, 1]),
    /**
     * Overrides of SiT's two-view augmentation (defaults: @sit/data's `sitTwoViewTransform`, i.e.
     * SiT v3's ImageNet recipe — its blur σ range is in output pixels, made for 224 px crops).
     */
    augment: z
      .object({
        flipP: probability.optional(),
        grayscaleP: probability.optional(),
        blurSigma: z
          .tuple([z.number().finite().positive(), z.number().finite().positive()])
          .optional(),
        /** Blur probability of view 1 and view 2 (SiT: 1.0 and 0.1). */
        blurP: z.tuple([probability, probability]).optional(),
        solarizeP: probability.optional(),
        colorJitter: z
          .object({
            brightness: z.number().finite().min(0),
            contrast: z.number().finite().min(0),
            saturation: z.number().finite().min(0),
            hue: z.number().min(0).max(0.5),
            p: probability,
          })
          .partial()
          .strict()
          .optional(),
      })
      .strict()
      .default({}),
    /** Use only this many pretraining images (the first ones): quick runs and tests. */
    limit: positiveInt.optional(),
    /** Data-loader prefetch depth (batches). */
    prefetch: positiveInt.default(2),
  })
  .strict();

/** Loop, checkpoints and logs. */
export const trainSchema = z
  .object({
    /** Stop after this many steps in all (the schedules still span `config.optim.epochs`). */
    steps: positiveInt.optional(),
    /** Checkpoint every this many steps. */
    checkpointEverySteps: positiveInt.optional(),
    /** Checkpoint every this many epochs (default 1). */
    checkpointEveryEpochs: positiveInt.optional(),
    /** Keep the newest k checkpoints (0 keeps all). */
    keepLast: z.number().int().min(0).default(3),
    /** Stop (with a checkpoint) once this run has trained this many minutes: a time budget. */
    maxMinutes: z.number().finite().positive().optional(),
    /** Write TensorBoard event files under `<out>/tb`. */
    tensorboard: z.boolean().default(true),
    /**
     * Steps between the reconstruction and attention pictures in TensorBoard (0: none; default:
     * once an epoch).
     */
    tensorboardImagesEvery: z.number().int().min(0).optional(),
  })
  .strict();

/** The online k-NN monitor: features of a labelled training split vs a held-out split, every N epochs. */
export const monitorSchema = z
  .object({
    /** Run every this many epochs (and at the end); absent = off. */
    knnEvery: positiveInt.optional(),
    /** Neighbours (DINO: 20). */
    k: positiveInt.default(20),
    /** At most this many images of each split, evenly spaced (default: all). */
    samples: positiveInt.optional(),
    /** Features of the student or the teacher. */
    weights: z.enum(["student", "teacher"]).default("student"),
  })
  .strict();

/** The whole `sit pretrain` configuration (a JSON file; command-line flags override it). */
export const pretrainSchema = z
  .object({
    $comment: z.string().optional(),
    recipe: z.enum(RECIPE_NAMES).default("sit"),
    backend: z.enum(BACKEND_CHOICES).default("auto"),
    /** Output folder: config, checkpoints, metrics, TensorBoard events. */
    out: z.string().min(1).default("runs/sit"),
    data: dataSchema.default({}),
    /** The recipe's own configuration (backbone, projection, gmml, optim, lambda, seed…), validated by the recipe. */
    config: z.record(z.unknown()).default({}),
    train: trainSchema.default({}),
    monitor: monitorSchema.default({}),
    /** What `sit pretrain` derived (steps, schedules) when it wrote `run.json`; ignored on input. */
    derived: z.record(z.unknown()).optional(),
  })
  .strict();

export type PretrainConfig = z.output<typeof pretrainSchema>;
export type PretrainConfigInput = z.input<typeof pretrainSchema>;
export type DataConfig = z.output<typeof dataSchema>;

/** Parse with a schema; problems become one UsageError naming each field (`what.path: message`). */
export function parseWith<S extends z.ZodTypeAny>(
  schema: S,
  input: unknown,
  what: string,
): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const path = i.path.length ? `${what}.${i.path.join(".")}` : what;
    const got = "received" in i ? ` (got ${JSON.stringify(i.received)})` : "";
    return `${path}: ${i.message}${got}`;
  });
  throw new UsageError(lines.join("; "));
}

/** Read a JSON config file; a missing or malformed file is a usage error naming it. */
export function readJsonConfig(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new UsageError(`--config: file not found: ${path}`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new UsageError(`--config: ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new UsageError(
      `--config: ${path} must hold a JSON object, got ${JSON.stringify(value)?.slice(0, 60)}`,
    );
  return value as Record<string, unknown>;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Deep merge: objects merge key by key, everything else (arrays included) is replaced; undefined never overrides. */
export function deepMerge(
  base: Record<string, unknown>,
  ...overrides: Record<string, unknown>[]
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const o of overrides)
    for (const [k, v] of Object.entries(o)) {
      if (v === undefined) continue;
      out[k] =
        isPlainObject(v) && isPlainObject(out[k])
          ? deepMerge(out[k] as Record<string, unknown>, v)
          : v;
    }
  return out;
}

/** Set `obj[a][b]…` = value (creating objects), skipping undefined values. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  if (value === undefined) return;
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (!isPlainObject(o[k])) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]] = value;
}

/** Names the CLI accepts for `--dataset`, for help texts. */
export const DATASET_HELP = `${DATASET_NAMES.join(" | ")} | <path>`;
