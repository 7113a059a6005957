import { readFileSync } from "node:fs";
import { IOError } from "@sit/core";
import { parseConfig } from "@sit/recipes";
import { z } from "zod";
import { PAPER_DATASETS } from "./datasets";

/**
 * SiT v3's pretraining configuration (spec §2–§7): ViT-S/16 at 224 px, GMML with zeros fill at
 * ratio 0.5 and 50 % other-image replacement, projection head 4096/256, τ = 0.2, teacher momentum
 * 0.996 → 1, AdamW with lr 5e-4·B/256 (10 warm-up epochs, cosine to 1e-6), weight decay
 * 0.04 → 0.1, per-tensor clipping 3.0, λ = 5 (the README's value for small datasets).
 * Epochs: 800 (the code's default; the small-dataset epoch count is unverified). Batch 64 on one
 * device (the reference used 64/GPU; contrastive negatives are then the other 63 images).
 */
export const PAPER_SIT_CONFIG = {
  backbone: { preset: "small", imgSize: 224, patchSize: 16, dropPathRate: 0.1 },
  projection: { hidden: 4096, outDim: 256 },
  gmml: { ratio: 0.5, fill: "zeros", align: 1, replaceProb: 0.5, replaceRatio: 0.3 },
  optim: {
    epochs: 800,
    batchSize: 64,
    baseLr: 5e-4,
    minLr: 1e-6,
    warmupEpochs: 10,
    weightDecay: 0.04,
    weightDecayEnd: 0.1,
    clipGrad: 3.0,
  },
  temperature: 0.2,
  lambda: 5,
  momentum: { base: 0.996, final: 1 },
  seed: 0,
} as const;

const positiveInt = z.number().int().positive();
const range = z.tuple([z.number().gt(0).lte(1), z.number().gt(0).lte(1)]);

/** One example's configuration (its `config.json`), merged over the paper defaults. */
export const exampleSchema = z
  .object({
    /** Example name (the folder under examples/). */
    name: z.string().min(1),
    dataset: z.enum(PAPER_DATASETS),
    /** Overrides of {@link PAPER_SIT_CONFIG} (deep-merged); validated by @sit/recipes' createSiT. */
    sit: z.record(z.unknown()).default({}),
    pretrain: z
      .object({
        /** RandomResizedCrop area range of the two views (SiT: 0.2–1). */
        cropScale: range.default([0.2, 1]),
        interpolation: z.enum(["bicubic", "bilinear"]).default("bicubic"),
        /** Checkpoint every this many epochs (and at the end, and on Ctrl-C). */
        checkpointEveryEpochs: positiveInt.default(10),
        /** Resize photos at decode time (shorter side, px); default: keep the stored size. */
        decodeShorter: positiveInt.optional(),
      })
      .strict()
      .default({}),
    knn: z
      .object({ enabled: z.boolean().default(true), k: positiveInt.default(20) })
      .strict()
      .default({}),
    /** DeiT's fine-tuning recipe (spec §8), as @sit/eval's fineTune implements it. */
    finetune: z
      .object({
        epochs: positiveInt.default(300),
        batchSize: positiveInt.default(64),
        /** Peak lr; default DeiT's 5e-4·batch/512. */
        lr: z.number().positive().optional(),
        minLr: z.number().min(0).default(1e-5),
        warmupEpochs: z.number().min(0).default(5),
        weightDecay: z.number().min(0).default(0.05),
        labelSmoothing: z.number().min(0).lt(1).default(0.1),
        layerDecay: z.number().gt(0).lte(1).default(1),
        /** `sit`: SiT v3's head on concat(CLS, mean patch); `linear`: DeiT's on CLS. */
        head: z.enum(["sit", "linear"]).default("sit"),
        mixup: z.boolean().default(true),
        randAugment: z.boolean().default(true),
        dropPathRate: z.number().min(0).lt(1).default(0.1),
        cropScale: range.default([0.08, 1]),
        /** Which pretrained backbone to evaluate: the student (default; MoCo v3 evaluates its online encoder, and GMML-style methods have no teacher) or the EMA teacher (DINO's convention). */
        from: z.enum(["teacher", "student"]).default("student"),
      })
      .strict()
      .default({}),
    seed: z.number().int().default(0),
  })
  .strict();

export type ExampleConfig = z.output<typeof exampleSchema>;
export type ExampleConfigInput = z.input<typeof exampleSchema>;

/** Plain-object deep merge: `over`'s values win; arrays and non-objects replace. */
export function deepMerge<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(out[k], v);
  return out as T;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Read and validate an example's config file. */
export function readExampleConfig(path: string): ExampleConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new IOError(`${path}: cannot read the example config (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (isPlainObject(raw)) delete raw.$comment;
  return parseConfig(exampleSchema, raw, path);
}

/** The SiT configuration an example runs: the paper defaults with the example's overrides. */
export function sitConfigOf(config: ExampleConfig): Record<string, unknown> {
  return deepMerge(PAPER_SIT_CONFIG as unknown as Record<string, unknown>, config.sit);
}
