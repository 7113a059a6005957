import { ConfigError } from "@sit/core";
import { GMML_DEFAULTS } from "@sit/gmml";
import { VIT_PRESETS } from "@sit/vit";
import { type SitConfig, type SitConfigInput, resolveBackbone } from "./config";

// The SiT code's `main.py` argparse names (`args` in its checkpoint.pth) ⇄ our SiT config. One
// mapping, both directions, so that an exported run and an imported one mean the same thing.

/** The architecture beside `args` (the SiT code fixes it by `--model`: patch 16, 224 px, hidden 4096). */
export interface SitTorchArchitecture {
  img_size: number;
  patch_size: number;
  in_chans: number;
  embed_dim: number;
  depth: number;
  num_heads: number;
  mlp_ratio: number;
  /** Hidden width of the projection head `CLSHead` (4096 in the SiT code). */
  head_hidden_dim: number;
}

const MODEL_OF_PRESET = { tiny: "vit_tiny", small: "vit_small", base: "vit_base" } as const;
/** What the SiT code's main.py builds besides the preset: `vits.<model>()` and `CLSHead(D, out_dim)`. */
const OFFICIAL_FIXED = { patch_size: 16, img_size: 224, in_chans: 3, head_hidden_dim: 4096 };

/** The architecture of a config. */
export function sitTorchArchitecture(config: SitConfig): SitTorchArchitecture {
  const b = resolveBackbone(config.backbone);
  return {
    img_size: b.imgSize,
    patch_size: b.patchSize,
    in_chans: b.inChans,
    embed_dim: b.embedDim,
    depth: b.depth,
    num_heads: b.numHeads,
    mlp_ratio: b.mlpRatio,
    head_hidden_dim: config.projection.hidden,
  };
}

/** `vit_tiny` / `vit_small` / `vit_base` when the sizes are a preset's, else null. */
function modelName(a: SitTorchArchitecture): string | null {
  for (const [preset, p] of Object.entries(VIT_PRESETS))
    if (p.embedDim === a.embed_dim && p.depth === a.depth && p.numHeads === a.num_heads)
      return MODEL_OF_PRESET[preset as keyof typeof MODEL_OF_PRESET];
  return null;
}

/**
 * Our config as the SiT code's `args` (`lr` is the base lr before its ×batch/256 scaling, as
 * ours; `batch_size` is per process, so with `worldSize` processes the total is split), and the
 * settings its main.py cannot represent, in words (empty: main.py trains exactly this run).
 */
export function sitArgsFromConfig(
  config: SitConfig,
  worldSize = 1,
): { args: Record<string, unknown>; differences: string[] } {
  const o = config.optim;
  const g = config.gmml;
  if (!Number.isInteger(worldSize) || worldSize < 1 || o.batchSize % worldSize !== 0)
    throw new ConfigError(
      `worldSize: expected a positive integer dividing optim.batchSize ${o.batchSize}, got ${worldSize}`,
    );
  const arch = sitTorchArchitecture(config);
  const model = modelName(arch);
  const args: Record<string, unknown> = {
    model: model ?? "custom",
    drop_path_rate: config.backbone.dropPathRate,
    out_dim: config.projection.outDim,
    simclr_temp: config.temperature,
    momentum_teacher: config.momentum.base,
    drop_perc: g.ratio,
    // The SiT code replaces a view with another image's blocks with probability 0.5 when drop_replace > 0.
    drop_replace: g.replaceProb > 0 ? g.replaceRatio : 0,
    drop_align: g.align,
    drop_type: g.fill,
    lmbda: config.lambda,
    use_fp16: false,
    weight_decay: o.weightDecay,
    weight_decay_end: o.weightDecayEnd,
    clip_grad: o.clipGrad,
    batch_size: o.batchSize / worldSize,
    world_size: worldSize,
    epochs: o.epochs,
    lr: o.baseLr,
    warmup_epochs: o.warmupEpochs,
    min_lr: o.minLr,
    seed: config.seed,
  };
  const differences: string[] = [];
  if (!model)
    differences.push(
      `the ViT (D ${arch.embed_dim}, depth ${arch.depth}, ${arch.num_heads} heads) is none of vit_tiny/small/base`,
    );
  for (const [k, v] of Object.entries(OFFICIAL_FIXED))
    if (arch[k as keyof SitTorchArchitecture] !== v)
      differences.push(`${k} is ${arch[k as keyof SitTorchArchitecture]} (main.py: ${v})`);
  if (arch.mlp_ratio !== 4) differences.push(`mlp_ratio is ${arch.mlp_ratio} (main.py: 4)`);
  if (g.replaceProb !== 0 && g.replaceProb !== 0.5)
    differences.push(
      `gmml.replaceProb is ${g.replaceProb} (main.py: 0.5, or 0 with drop_replace 0)`,
    );
  if (g.maxBlockFraction !== GMML_DEFAULTS.maxBlockFraction)
    differences.push(`gmml.maxBlockFraction is ${g.maxBlockFraction} (main.py: 0.3)`);
  if (g.excludeSelf) differences.push("gmml.excludeSelf is true (main.py may pick the same image)");
  if (config.momentum.final !== 1)
    differences.push(`momentum.final is ${config.momentum.final} (main.py: 1)`);
  if (config.reconstruction !== "l1")
    differences.push(`reconstruction is ${config.reconstruction} (main.py: l1)`);
  if (o.betas[0] !== 0.9 || o.betas[1] !== 0.999)
    differences.push(`optim.betas are [${o.betas}] (main.py: [0.9, 0.999])`);
  if (!Number.isInteger(config.lambda))
    differences.push(`lambda is ${config.lambda} (main.py's --lmbda is an integer)`);
  return { args, differences };
}

function num(args: Record<string, unknown>, key: string, fallback?: number): number {
  const v = args[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new ConfigError(`args.${key}: expected a number, got ${JSON.stringify(args[key])}`);
  return v;
}

/**
 * The inverse of {@link sitArgsFromConfig}: a SiT config from the SiT code's `args` and the
 * architecture (read from the weights' shapes for an official checkpoint). `stepsPerEpoch` is
 * not in `args` (it is the data loader's length); `worldSize` defaults to `args.world_size`.
 */
export function sitConfigFromArgs(
  args: Record<string, unknown>,
  arch: SitTorchArchitecture,
  stepsPerEpoch: number,
): SitConfigInput {
  const worldSize = num(args, "world_size", 1);
  const dropReplace = num(args, "drop_replace", 0);
  const fill = args.drop_type ?? "zeros";
  if (fill !== "zeros" && fill !== "noise" && fill !== "shuffle")
    throw new ConfigError(
      `args.drop_type: expected "zeros", "noise" or "shuffle" (one type; SiT.js has no '-'-separated mixes), got ${JSON.stringify(fill)}`,
    );
  return {
    backbone: {
      imgSize: arch.img_size,
      patchSize: arch.patch_size,
      inChans: arch.in_chans,
      embedDim: arch.embed_dim,
      depth: arch.depth,
      numHeads: arch.num_heads,
      mlpRatio: arch.mlp_ratio,
      dropPathRate: num(args, "drop_path_rate", 0.1),
    },
    projection: { hidden: arch.head_hidden_dim, outDim: num(args, "out_dim") },
    gmml: {
      ratio: num(args, "drop_perc"),
      fill,
      align: num(args, "drop_align", 1),
      replaceProb: dropReplace > 0 ? 0.5 : 0,
      ...(dropReplace > 0 ? { replaceRatio: dropReplace } : {}),
    },
    optim: {
      batchSize: num(args, "batch_size") * worldSize,
      epochs: num(args, "epochs"),
      stepsPerEpoch,
      baseLr: num(args, "lr"),
      minLr: num(args, "min_lr"),
      warmupEpochs: num(args, "warmup_epochs"),
      weightDecay: num(args, "weight_decay"),
      weightDecayEnd: num(args, "weight_decay_end"),
      clipGrad: num(args, "clip_grad", 0),
    },
    temperature: num(args, "simclr_temp"),
    lambda: num(args, "lmbda"),
    momentum: { base: num(args, "momentum_teacher"), final: 1 },
    seed: num(args, "seed", 0),
  };
}
