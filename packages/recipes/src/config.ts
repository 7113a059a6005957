import { ConfigError } from "@sit/core";
import { ATTENTION_MASK_DEFAULTS, GMML_DEFAULTS } from "@sit/gmml";
import { PRECISIONS, type Precision } from "@sit/kernels";
import { CONTRASTIVE_LOSS_DEFAULTS, RECONSTRUCTION_LOSS_DEFAULTS } from "@sit/losses";
import { MOMENTUM_DEFAULTS } from "@sit/momentum";
import { VIT_DEFAULTS, VIT_PRESETS } from "@sit/vit";
import { z } from "zod";
import { SIT_PROJECTION_DEFAULTS } from "./sit-projection-head";

/**
 * Run-time validated configurations of the recipes, with SiT v3's defaults (spec §2–§7).
 * A bad value throws a ConfigError that names the field, the value and what was expected.
 * Defaults that belong to a block are that block's exported defaults (`VIT_DEFAULTS`,
 * `GMML_DEFAULTS`, `MOMENTUM_DEFAULTS`…); only the recipes' own choices are written here.
 */

const positiveInt = z.number().int().positive();
const fraction = z.number().gt(0).lte(1);

/** The ViT: a preset name or explicit sizes (SiT default: ViT-S/16 at 224 px). */
export const backboneSchema = z
  .object({
    preset: z.enum(["tiny", "small", "base"]).optional(),
    imgSize: positiveInt.default(VIT_DEFAULTS.imgSize),
    patchSize: positiveInt.default(VIT_DEFAULTS.patchSize),
    inChans: positiveInt.default(VIT_DEFAULTS.inChans),
    embedDim: positiveInt.optional(),
    depth: positiveInt.optional(),
    numHeads: positiveInt.optional(),
    mlpRatio: z.number().finite().positive().default(VIT_DEFAULTS.mlpRatio),
    /** Student stochastic depth (0 → rate, linearly over blocks); the teacher always uses 0. */
    dropPathRate: z.number().min(0).lt(1).default(0.1),
    /**
     * Recompute blocks in the backward pass (needed on wasm for deep models at large batches):
     * all (`true`), none, or the first k (a number from 0 to the depth).
     */
    checkpointBlocks: z
      .union([z.boolean(), z.number().int().min(0)])
      .default(VIT_DEFAULTS.checkpointBlocks),
  })
  .strict();

export const gmmlSchema = z
  .object({
    ratio: fraction.default(GMML_DEFAULTS.ratio),
    fill: z.enum(["zeros", "noise", "shuffle"]).default(GMML_DEFAULTS.fill),
    align: positiveInt.default(GMML_DEFAULTS.align),
    maxBlockFraction: fraction.default(GMML_DEFAULTS.maxBlockFraction),
    replaceProb: z.number().min(0).max(1).default(GMML_DEFAULTS.replaceProb),
    replaceRatio: fraction.default(GMML_DEFAULTS.replaceRatio),
    excludeSelf: z.boolean().default(GMML_DEFAULTS.excludeSelf),
  })
  .strict();

/**
 * Attention-guided masking (AttMask, Kakogeorgiou et al. 2022): which patches the teacher's CLS
 * attends to most are masked ("high"), optionally with a few of the top ones revealed ("hint").
 */
export const attentionMaskSchema = z
  .object({
    mode: z.enum(["high", "hint"]).default(ATTENTION_MASK_DEFAULTS.mode),
    ratio: fraction.default(GMML_DEFAULTS.ratio),
    showMax: fraction.default(ATTENTION_MASK_DEFAULTS.showMax),
    showRatio: z.number().min(0).max(1).default(ATTENTION_MASK_DEFAULTS.showRatio),
    groups: z.enum(["token", "pixel"]).default(ATTENTION_MASK_DEFAULTS.groups),
  })
  .strict();

export const optimSchema = z
  .object({
    /** Images per step (both views count once: B images give 2B crops). */
    batchSize: positiveInt.default(64),
    epochs: positiveInt.default(800),
    /** Iterations per epoch (dataset length / batch size). */
    stepsPerEpoch: positiveInt,
    /** lr = baseLr · batchSize / 256 (SiT's linear scaling rule). */
    baseLr: z.number().finite().positive().default(5e-4),
    minLr: z.number().finite().min(0).default(1e-6),
    warmupEpochs: z.number().int().min(0).default(10),
    weightDecay: z.number().finite().min(0).default(0.04),
    weightDecayEnd: z.number().finite().min(0).default(0.1),
    /** Per-tensor gradient clipping (0 disables). */
    clipGrad: z.number().finite().min(0).default(3.0),
    betas: z.tuple([z.number().gt(0).lt(1), z.number().gt(0).lt(1)]).default([0.9, 0.999]),
  })
  .strict();

export const sitSchema = z
  .object({
    backbone: backboneSchema.default({}),
    /** Projection head `CLSHead(D, outDim)` (hidden 4096, out 256 in SiT). */
    projection: z
      .object({
        hidden: positiveInt.default(SIT_PROJECTION_DEFAULTS.hidden),
        outDim: positiveInt.default(SIT_PROJECTION_DEFAULTS.outDim),
      })
      .strict()
      .default({}),
    gmml: gmmlSchema.default({}),
    /**
     * "gmml" (default: GMML's random blocks, `gmml`) or "attention" (attention-guided masks from
     * the teacher's forward on the clean views, `attentionMask`). Absent means "gmml".
     */
    masking: z.enum(["gmml", "attention"]).optional(),
    attentionMask: attentionMaskSchema.optional(),
    optim: optimSchema,
    /** Contrastive temperature τ (loss scaled by 2τ). */
    temperature: z.number().finite().positive().default(CONTRASTIVE_LOSS_DEFAULTS.temperature),
    /** λ in L = Lc + λ·Lr (README: 5 for small datasets). */
    lambda: z.number().finite().min(0).default(1),
    /** Teacher momentum: cosine from `base` to `final` over the run. */
    momentum: z
      .object({
        base: z.number().min(0).max(1).default(MOMENTUM_DEFAULTS.base),
        final: z.number().min(0).max(1).default(MOMENTUM_DEFAULTS.final),
      })
      .strict()
      .default({}),
    reconstruction: z.enum(["l1", "l2"]).default(RECONSTRUCTION_LOSS_DEFAULTS.type),
    seed: z.number().int().default(0),
    /**
     * "f32" (default) or "mixed-f16": f16 GEMMs with f32 accumulation, f32 master weights and
     * dynamic loss scaling, as PyTorch AMP (webgpu with shader-f16 only).
     */
    precision: z.enum(PRECISIONS as [Precision, ...Precision[]]).default("f32"),
  })
  .strict();

export type BackboneConfig = z.output<typeof backboneSchema>;
export type BackboneConfigInput = z.input<typeof backboneSchema>;
export type GmmlConfig = z.output<typeof gmmlSchema>;
export type AttentionMaskConfig = z.output<typeof attentionMaskSchema>;
export type OptimConfig = z.output<typeof optimSchema>;
export type SitConfig = z.output<typeof sitSchema>;
export type SitConfigInput = z.input<typeof sitSchema>;

/** Parse `input` with `schema`, turning zod's issues into one ConfigError naming each field. */
export function parseConfig<S extends z.ZodTypeAny>(
  schema: S,
  input: unknown,
  what = "config",
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.join(".") : "(root)";
    const received = "received" in issue ? ` (got ${JSON.stringify(issue.received)})` : "";
    return `${what}.${path}: ${issue.message}${received}`;
  });
  throw new ConfigError(lines.join("; "));
}

/** Fill embedDim/depth/numHeads from the preset (default small, as SiT) where not given. */
export function resolveBackbone(b: BackboneConfig): Required<Omit<BackboneConfig, "preset">> {
  const preset = VIT_PRESETS[b.preset ?? "small"];
  return {
    imgSize: b.imgSize,
    patchSize: b.patchSize,
    inChans: b.inChans,
    embedDim: b.embedDim ?? preset.embedDim,
    depth: b.depth ?? preset.depth,
    numHeads: b.numHeads ?? preset.numHeads,
    mlpRatio: b.mlpRatio,
    dropPathRate: b.dropPathRate,
    checkpointBlocks: b.checkpointBlocks,
  };
}

/** GMML-only (the GMML repo's method): SiT without the contrastive branch and the teacher. */
export const gmmlOnlySchema = z
  .object({
    backbone: backboneSchema.default({}),
    gmml: gmmlSchema.default({}),
    optim: optimSchema,
    reconstruction: z.enum(["l1", "l2"]).default(RECONSTRUCTION_LOSS_DEFAULTS.type),
    seed: z.number().int().default(0),
  })
  .strict();

/** MoCo v3: projector + predictor on the student, EMA teacher with the projector, contrastive loss only. */
export const mocoV3Schema = z
  .object({
    backbone: backboneSchema.default({}),
    projection: z
      .object({
        hidden: positiveInt.default(SIT_PROJECTION_DEFAULTS.hidden),
        outDim: positiveInt.default(SIT_PROJECTION_DEFAULTS.outDim),
      })
      .strict()
      .default({}),
    predictorHidden: positiveInt.default(4096),
    optim: optimSchema,
    temperature: z.number().finite().positive().default(CONTRASTIVE_LOSS_DEFAULTS.temperature),
    momentum: z
      .object({
        base: z.number().min(0).max(1).default(0.99),
        final: z.number().min(0).max(1).default(1),
      })
      .strict()
      .default({}),
    seed: z.number().int().default(0),
  })
  .strict();

/** MAE-style masked-token reconstruction with a light transformer decoder. */
export const maeSchema = z
  .object({
    backbone: backboneSchema.default({}),
    maskRatio: fraction.default(0.75),
    decoder: z
      .object({
        embedDim: positiveInt.default(128),
        depth: positiveInt.default(2),
        numHeads: positiveInt.default(4),
      })
      .strict()
      .default({}),
    optim: optimSchema,
    /** Normalise each target patch by its own mean and std (MAE's `norm_pix_loss`). */
    normPixLoss: z.boolean().default(true),
    seed: z.number().int().default(0),
  })
  .strict();

export type GmmlOnlyConfig = z.output<typeof gmmlOnlySchema>;
export type GmmlOnlyConfigInput = z.input<typeof gmmlOnlySchema>;
export type MocoV3Config = z.output<typeof mocoV3Schema>;
export type MocoV3ConfigInput = z.input<typeof mocoV3Schema>;
export type MaeConfig = z.output<typeof maeSchema>;
export type MaeConfigInput = z.input<typeof maeSchema>;
