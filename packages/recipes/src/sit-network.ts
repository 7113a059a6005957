import type * as tf from "@tensorflow/tfjs";
import { Module, type ProjectionHead, type Rng } from "@sit/core";
import { SitReconstructionHead } from "@sit/decoder";
import { VisionTransformer, type VitOutput } from "@sit/vit";
import type { BackboneConfig } from "./config";
import { resolveBackbone } from "./config";
import { sitProjectionHead } from "./sit-projection-head";

/** What {@link SitNetwork.forward} returns (tensors the caller owns). */
export interface SitNetworkOutput {
  /** Backbone outputs. */
  features: VitOutput;
  /** Projection-head output `[B, outDim]`, when the network has a projection head. */
  projection?: tf.Tensor2D;
  /** Reconstructed images NHWC, when the network has a reconstruction head. */
  reconstruction?: tf.Tensor4D;
}

/**
 * A ViT backbone with SiT's heads: `backbone` (the ViT), `cls_head` (projection head on the CLS
 * token) and `rec_head` (reconstruction head on the patch tokens); either head may be absent.
 * The SiT code keeps the backbone's parameters at the top level (`blocks.0…`, `cls_head.mlp.0…`):
 * {@link SitNetwork.toSitNames} / {@link SitNetwork.fromSitNames} map our `backbone.` prefix to that.
 */
export class SitNetwork extends Module {
  readonly backbone: VisionTransformer;
  readonly clsHead: ProjectionHead | null;
  readonly recHead: SitReconstructionHead | null;

  constructor(parts: {
    backbone: VisionTransformer;
    clsHead?: ProjectionHead | null;
    recHead?: SitReconstructionHead | null;
  }) {
    super();
    this.backbone = this.registerModule("backbone", parts.backbone);
    this.clsHead = parts.clsHead ? this.registerModule("cls_head", parts.clsHead) : null;
    this.recHead = parts.recHead ? this.registerModule("rec_head", parts.recHead) : null;
  }

  /**
   * Run the backbone and the heads on NHWC images; `reconstruction: false` skips the
   * reconstruction head (SiT's teacher: only its projections are used).
   */
  forward(
    images: tf.Tensor4D,
    options: { rng?: Rng; reconstruction?: boolean } = {},
  ): SitNetworkOutput {
    const features = this.backbone.forward(images, options.rng ? { rng: options.rng } : {});
    const out: SitNetworkOutput = { features };
    if (this.clsHead) out.projection = this.clsHead.apply(features.cls) as tf.Tensor2D;
    if (this.recHead && options.reconstruction !== false)
      out.reconstruction = this.recHead.apply(features.patchTokens, this.backbone.grid);
    return out;
  }

  /** Our names → the SiT code's (`backbone.blocks.0.x` → `blocks.0.x`; heads unchanged). */
  static toSitNames<T>(dict: Record<string, T>): Record<string, T> {
    const out: Record<string, T> = {};
    for (const [k, v] of Object.entries(dict)) out[k.startsWith("backbone.") ? k.slice(9) : k] = v;
    return out;
  }

  /** The SiT code's names → ours (everything that is not a head belongs to the backbone). */
  static fromSitNames<T>(dict: Record<string, T>): Record<string, T> {
    const out: Record<string, T> = {};
    for (const [k, v] of Object.entries(dict))
      out[k.startsWith("cls_head.") || k.startsWith("rec_head.") ? k : `backbone.${k}`] = v;
    return out;
  }
}

/** Build a ViT from a validated backbone config (the teacher passes dropPathRate 0). */
export function buildBackbone(
  config: BackboneConfig,
  rng: Rng,
  overrides: { dropPathRate?: number } = {},
): VisionTransformer {
  const b = resolveBackbone(config);
  return new VisionTransformer({
    ...b,
    dropPathRate: overrides.dropPathRate ?? b.dropPathRate,
    rng,
  });
}

/** Build a SiT network: ViT + projection head (optional) + reconstruction head (optional). */
export function buildSitNetwork(
  config: BackboneConfig,
  heads: { projection?: { hidden: number; outDim: number } | null; reconstruction?: boolean },
  rng: Rng,
  overrides: { dropPathRate?: number } = {},
): SitNetwork {
  const backbone = buildBackbone(config, rng, overrides);
  const clsHead = heads.projection
    ? sitProjectionHead(backbone.embedDim, rng, heads.projection)
    : null;
  const recHead = heads.reconstruction
    ? new SitReconstructionHead({
        embedDim: backbone.embedDim,
        patchSize: backbone.patchSize,
        outChans: backbone.inChans,
        rng,
      })
    : null;
  return new SitNetwork({ backbone, clsHead, recHead });
}
