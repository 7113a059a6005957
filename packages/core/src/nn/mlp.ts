import * as tf from "@tensorflow/tfjs";
import { ConfigError, checkNumber, invalidArgument } from "../errors";
import { Rng } from "../rng";
import { type ActivationName, activation } from "./activations";
import { BatchNorm1d } from "./batch-norm";
import { LayerNorm } from "./layer-norm";
import { Linear } from "./linear";
import { Module } from "./module";

/** Normalisation after a block's Linear: BatchNorm1d with or without affine parameters, or LayerNorm. */
export type MLPNorm = "batch" | "batch_noaffine" | "layer";

/** One block of an {@link MLP}: Linear(in → out) → optional norm → optional activation. */
export interface MLPBlock {
  in: number;
  out: number;
  norm?: MLPNorm | null;
  activation?: ActivationName | null;
  /** Bias on the Linear (default true, as SiT/timm; lightly drops it before a BatchNorm). */
  bias?: boolean;
}

/** Options of {@link MLP} and {@link ProjectionHead}. */
export interface MLPOptions {
  rng: Rng;
  /** Linear initialisation (default `trunc_normal`, std 0.02, bias 0: SiT/timm). */
  init?: "trunc_normal" | "pytorch";
  /** BatchNorm eps (default 1e-5) and momentum (default 0.1). */
  batchNormEps?: number;
  batchNormMomentum?: number | null;
  /** LayerNorm eps (default 1e-5, PyTorch's `nn.LayerNorm`). */
  layerNormEps?: number;
}

type Layer =
  | { kind: "module"; module: Linear | BatchNorm1d | LayerNorm }
  | { kind: "act"; name: ActivationName };

const NORMS: readonly string[] = ["batch", "batch_noaffine", "layer"];
const ACTIVATIONS: readonly string[] = ["relu", "gelu"];

/**
 * A stack of blocks laid out like PyTorch's `nn.Sequential`: every layer (Linear, norm,
 * activation) takes the next index, so the parameters are named `0.weight`, `1.running_mean`, …
 * exactly as a Sequential built from the same blocks (activations take an index but hold nothing).
 */
export class MLP extends Module {
  private readonly layers: Layer[] = [];
  readonly blocks: readonly MLPBlock[];

  constructor(blocks: MLPBlock[], options: MLPOptions) {
    super();
    if (!Array.isArray(blocks) || blocks.length === 0)
      throw invalidArgument(
        "blocks",
        blocks,
        "a non-empty array of { in, out, norm?, activation?, bias? }",
      );
    if (!options || !(options.rng instanceof Rng))
      throw invalidArgument("options.rng", options?.rng, "an Rng");
    let index = 0;
    blocks.forEach((b, i) => {
      checkNumber(`blocks[${i}].in`, b.in, { integer: true, min: 1 });
      checkNumber(`blocks[${i}].out`, b.out, { integer: true, min: 1 });
      if (i > 0 && b.in !== blocks[i - 1].out)
        throw new ConfigError(
          `blocks[${i}].in: expected ${blocks[i - 1].out} (the previous block's out), got ${b.in}`,
        );
      if (b.norm != null && !NORMS.includes(b.norm))
        throw invalidArgument(`blocks[${i}].norm`, b.norm, `one of ${NORMS.join(", ")} or null`);
      if (b.activation != null && !ACTIVATIONS.includes(b.activation))
        throw invalidArgument(
          `blocks[${i}].activation`,
          b.activation,
          `one of ${ACTIVATIONS.join(", ")} or null`,
        );
      const linear = new Linear(b.in, b.out, {
        bias: b.bias ?? true,
        init: options.init,
        rng: options.rng,
      });
      this.layers.push({ kind: "module", module: this.registerModule(String(index++), linear) });
      if (b.norm) {
        const norm =
          b.norm === "layer"
            ? new LayerNorm(b.out, options.layerNormEps ?? 1e-5)
            : new BatchNorm1d(b.out, {
                affine: b.norm === "batch",
                eps: options.batchNormEps,
                momentum: options.batchNormMomentum,
              });
        this.layers.push({ kind: "module", module: this.registerModule(String(index++), norm) });
      }
      if (b.activation) {
        this.layers.push({ kind: "act", name: b.activation });
        index++;
      }
    });
    this.blocks = blocks.map((b) => ({ ...b }));
  }

  /** Input features of the first block. */
  get inFeatures(): number {
    return this.blocks[0].in;
  }

  /** Output features of the last block. */
  get outFeatures(): number {
    return this.blocks[this.blocks.length - 1].out;
  }

  /** Run every layer in order over the last axis. */
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      for (const layer of this.layers)
        h = layer.kind === "act" ? activation(layer.name, h) : layer.module.apply(h);
      return h;
    });
  }
}

/**
 * A projection head as in lightly's `ProjectionHead`: an {@link MLP} registered under `mlp`, so its
 * parameters are named `mlp.0.weight`, `mlp.1.running_mean`, … like SiT's/DINO's heads.
 */
export class ProjectionHead extends Module {
  readonly mlp: MLP;

  constructor(blocks: MLPBlock[], options: MLPOptions) {
    super();
    this.mlp = this.registerModule("mlp", new MLP(blocks, options));
  }

  apply(x: tf.Tensor): tf.Tensor {
    return this.mlp.apply(x);
  }
}
