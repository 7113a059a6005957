// The ViT sizes and defaults, in one place: the VisionTransformer, the preset builders and the
// recipes' config schemas (@sit/recipes) all read them from here.

/** The ViT sizes of SiT's code (timm's `vit_tiny`, `vit_small`, `vit_base`). */
export const VIT_PRESETS = {
  tiny: { embedDim: 192, depth: 12, numHeads: 3 },
  small: { embedDim: 384, depth: 12, numHeads: 6 },
  base: { embedDim: 768, depth: 12, numHeads: 12 },
} as const;

/** A name of {@link VIT_PRESETS}. */
export type VitPresetName = keyof typeof VIT_PRESETS;

/** `VisionTransformer`'s defaults: ViT-B/16 at 224 px, as in SiT. */
export const VIT_DEFAULTS = {
  imgSize: 224,
  patchSize: 16,
  inChans: 3,
  ...VIT_PRESETS.base,
  mlpRatio: 4,
  qkvBias: true,
  layerNormEps: 1e-6,
  dropPathRate: 0,
  checkpointBlocks: false,
} as const;
