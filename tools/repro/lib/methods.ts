import type { Recipe } from "@sit/train";
import { createDINO, createGmmlOnly, createMAE, createMoCoV3, createSiT } from "@sit/recipes";
import type { VisionTransformer } from "@sit/vit";

/** The methods the study compares; `random` is no pretraining (random initialisation). */
export const METHODS = ["random", "sit", "gmml", "mocov3", "mae", "dino", "sit-attn"] as const;
export type Method = (typeof METHODS)[number];

/** Display names (table rows and plot legend). */
export const METHOD_LABELS: Readonly<Record<Method, string>> = {
  random: "Random init.",
  sit: "SiT",
  gmml: "GMML only",
  mocov3: "MoCo v3",
  mae: "MAE",
  dino: "DINO",
  "sit-attn": "SiT + AttMask",
};

/**
 * DINO in the study: DINO's recipe and defaults (τs 0.1, τt 0.04, centre momentum 0.9, teacher
 * momentum 0.996 → 1, weight decay 0.04 → 0.4, last layer frozen for the first tenth of the run)
 * with a head sized for the small ViT (hidden = projHidden, bottleneck 128, 4,096 outputs instead
 * of 65,536) and 4 local crops of 14 px (2 × 2 patches) instead of 8: the CPU budget's choice.
 */
export const STUDY_DINO = {
  bottleneck: 128,
  outDim: 4096,
  nLocal: 4,
  localSize: 14,
} as const;

/**
 * SiT + AttMask in the study: SiT exactly as the "sit" row, but its masks come from the teacher's
 * attention (AttMask-Hint, Kakogeorgiou et al. 2022: the most attended half of the patches, one
 * of the top 10 % revealed) as GMML-style pixel groups, so that only the choice of *where* to mask
 * differs from GMML's random blocks.
 */
export const STUDY_ATTENTION_MASK = { mode: "hint", groups: "pixel" } as const;

/** The ViT and heads every method shares, and the pretraining budget. */
export interface ModelBudget {
  imgSize: number;
  patchSize: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  /** Hidden width of the projection head (SiT, MoCo v3) and of MoCo v3's predictor. */
  projHidden: number;
  /** MAE's transformer decoder: width and depth (heads: width / 32). */
  decoderDim: number;
  decoderDepth: number;
  batchSize: number;
  steps: number;
  /** Base learning rate of pretraining, scaled by batch / 256 (default SiT's 5e-4). */
  pretrainLr?: number;
  /** SiT's λ. */
  lambda: number;
  seed: number;
}

/** A pretraining recipe with the backbone it trains and the EMA teacher's, when it has one. */
export interface MethodRecipe {
  recipe: Recipe<unknown> & { dispose(): void };
  student: VisionTransformer;
  teacher?: VisionTransformer;
}

/**
 * Build `method`'s recipe from @sit/recipes with the shared backbone (1-channel input, drop path
 * 0.1) and optimiser (SiT's AdamW schedules: lr `pretrainLr`·B/256 (default 5e-4) with warm-up over
 * the first 10 % of the steps, cosine to 1e-6, weight decay 0.04 → 0.1, per-tensor clipping 3).
 * Each method keeps its own
 * published loss settings (SiT: GMML zeros fill + λ; GMML: the same corruption, no teacher;
 * MoCo v3: τ 0.2, momentum 0.99 → 1; MAE: 75 % random tokens, normalised-pixel loss).
 */
export function createMethod(method: Exclude<Method, "random">, b: ModelBudget): MethodRecipe {
  const backbone = {
    imgSize: b.imgSize,
    patchSize: b.patchSize,
    inChans: 1,
    embedDim: b.embedDim,
    depth: b.depth,
    numHeads: b.numHeads,
    dropPathRate: 0.1,
  };
  // Warm-up: a tenth of the run (SiT's 10 of 100 epochs). The schedules count warm-up in whole
  // epochs, and a short run is only a few data epochs long (none would be warm-up), so they are
  // given ten "epochs" of a tenth of the steps each; fit's step counter is global.
  const optim = {
    batchSize: b.batchSize,
    epochs: 10,
    stepsPerEpoch: Math.max(1, Math.ceil(b.steps / 10)),
    warmupEpochs: 1,
    ...(b.pretrainLr !== undefined ? { baseLr: b.pretrainLr } : {}),
  };
  const projection = { hidden: b.projHidden, outDim: 256 };
  const seed = b.seed;
  switch (method) {
    case "sit":
    case "sit-attn": {
      const r = createSiT({
        backbone,
        projection,
        optim,
        lambda: b.lambda,
        seed,
        ...(method === "sit-attn"
          ? { masking: "attention" as const, attentionMask: STUDY_ATTENTION_MASK }
          : {}),
      });
      return { recipe: r, student: r.student.backbone, teacher: r.teacher.module.backbone };
    }
    case "dino": {
      const r = createDINO({
        backbone,
        head: {
          hidden: b.projHidden,
          bottleneck: STUDY_DINO.bottleneck,
          outDim: STUDY_DINO.outDim,
        },
        multiCrop: { nLocal: STUDY_DINO.nLocal, localSize: STUDY_DINO.localSize },
        optim,
        seed,
      });
      return { recipe: r, student: r.student.backbone, teacher: r.teacherModule?.backbone };
    }
    case "gmml": {
      const r = createGmmlOnly({ backbone, optim, seed });
      return { recipe: r, student: r.student.backbone };
    }
    case "mocov3": {
      const r = createMoCoV3({ backbone, projection, predictorHidden: b.projHidden, optim, seed });
      return {
        recipe: r,
        student: r.student.encoder.backbone,
        teacher: r.teacherModule?.backbone,
      };
    }
    case "mae": {
      const decoder = {
        embedDim: b.decoderDim,
        depth: b.decoderDepth,
        numHeads: Math.max(1, b.decoderDim / 32),
      };
      const r = createMAE({ backbone, decoder, optim, seed });
      return { recipe: r, student: r.student.backbone };
    }
  }
}
