import {
  ColorJitter,
  type ColorJitterOptions,
  Normalize,
  RandomGaussianBlur,
  RandomGrayscale,
  RandomHorizontalFlip,
  RandomSolarize,
  type TensorOp,
} from "./ops";
import { IMAGENET_STATS, type NormalizeStats } from "./normalize";
import {
  BatchTransform,
  RandomResizedCrop,
  ResizeCenterCrop,
  type Size,
  type TransformExecution,
  ViewPipeline,
} from "./pipeline";
import type { Interpolation } from "./resample";

/** Options of {@link sitTwoViewTransform}; defaults are SiT v3's (spec §7.2). */
export interface SitTwoViewOptions {
  /** Output size; default 224 (SiT up-samples every dataset to 224). Small datasets may use 28/32. */
  size?: Size;
  /** RandomResizedCrop area range; default [0.2, 1]. */
  scale?: readonly [number, number];
  /** RandomResizedCrop aspect range; default [3/4, 4/3]. */
  ratio?: readonly [number, number];
  /** Default "bicubic" (SiT's); "bilinear" is cheaper. */
  interpolation?: Interpolation;
  /** Horizontal flip probability; default 0.5. */
  flipP?: number;
  /** Colour jitter; default brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, p 0.8. */
  colorJitter?: ColorJitterOptions;
  /** RandomGrayscale probability; default 0.2. */
  grayscaleP?: number;
  /** Blur σ range; default [0.1, 2.0] (PIL radius range of the recipe, in output pixels). */
  blurSigma?: readonly [number, number];
  /** Blur probability of view 1 and view 2; default [1.0, 0.1]. */
  blurP?: readonly [number, number];
  /** Solarize probability of view 2 (view 1 never); default 0.2. */
  solarizeP?: number;
  /** Normalisation; default ImageNet statistics (SiT's choice for every dataset); null: none. */
  normalize?: NormalizeStats | null;
  /** 3 (default): grayscale datasets become RGB first; 1: native 1-channel images. */
  channels?: 1 | 3;
  /** Where to compute (default "auto": JS loops on cpu/wasm, tfjs ops elsewhere). */
  execution?: TransformExecution;
}

/** Statistics matching the transform's channel count (a 1-channel batch uses the first entry). */
function statsFor(stats: NormalizeStats, channels: 1 | 3): NormalizeStats {
  if (channels === 1 && stats.mean.length === 3)
    return { mean: [stats.mean[0]], std: [stats.std[0]] };
  return stats;
}

/**
 * SiT v3's two clean views (spec §7.2, DINO/BYOL global-crop recipe): RandomResizedCrop(scale
 * 0.2–1), horizontal flip 0.5, ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8 in random order,
 * RandomGrayscale 0.2, then view 1: Gaussian blur p 1.0; view 2: blur p 0.1 and solarize p 0.2;
 * then ImageNet normalisation. Output NHWC float32 tensors `[B, size, size, channels]`.
 */
export function sitTwoViewTransform(options: SitTwoViewOptions = {}): BatchTransform<"views"> {
  const channels = options.channels ?? 3;
  const blurP = options.blurP ?? [1.0, 0.1];
  const common = (): TensorOp[] => [
    new RandomHorizontalFlip({ p: options.flipP ?? 0.5 }),
    new ColorJitter({
      ...{ brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 },
      ...options.colorJitter,
    }),
    new RandomGrayscale({ p: options.grayscaleP ?? 0.2 }),
  ];
  const crop = new RandomResizedCrop({
    size: options.size ?? 224,
    scale: options.scale ?? [0.2, 1],
    ratio: options.ratio,
    interpolation: options.interpolation ?? "bicubic",
  });
  const tail = (): TensorOp[] =>
    options.normalize === null
      ? []
      : [new Normalize(statsFor(options.normalize ?? IMAGENET_STATS, channels))];
  const sigma = options.blurSigma ?? [0.1, 2.0];
  const view1 = new ViewPipeline(crop, [
    ...common(),
    new RandomGaussianBlur({ sigma, p: blurP[0] }),
    ...tail(),
  ]);
  const view2 = new ViewPipeline(crop, [
    ...common(),
    new RandomGaussianBlur({ sigma, p: blurP[1] }),
    new RandomSolarize({ p: options.solarizeP ?? 0.2 }),
    ...tail(),
  ]);
  return new BatchTransform("views", [view1, view2], channels, options.execution);
}

/** Options of {@link evalTransform}. */
export interface EvalTransformOptions {
  /** Output size; default 224. */
  size?: Size;
  /** Shorter side before the centre crop; default round(size / 0.875) (256 for 224). Use `size` to only resize. */
  resize?: number;
  interpolation?: Interpolation;
  normalize?: NormalizeStats | null;
  channels?: 1 | 3;
  execution?: TransformExecution;
}

/** Evaluation transform: resize + centre crop + normalisation; deterministic, one `images` tensor. */
export function evalTransform(options: EvalTransformOptions = {}): BatchTransform<"images"> {
  const channels = options.channels ?? 3;
  const ops: TensorOp[] =
    options.normalize === null
      ? []
      : [new Normalize(statsFor(options.normalize ?? IMAGENET_STATS, channels))];
  const sampler = new ResizeCenterCrop({
    size: options.size ?? 224,
    resize: options.resize,
    interpolation: options.interpolation ?? "bilinear",
  });
  return new BatchTransform(
    "images",
    [new ViewPipeline(sampler, ops)],
    channels,
    options.execution,
  );
}
