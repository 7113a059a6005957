import * as tf from "@tensorflow/tfjs";
import { MLP, Module, type Rng, checkNumber, invalidArgument, truncNormal } from "@sit/core";

/**
 * {@link DinoHead}'s defaults: DINO's `DINOHead` (Caron et al. 2021) — 3 layers, hidden 2048,
 * bottleneck 256, output 65,536 (the paper's ViT setting; small datasets use far fewer), last layer
 * weight-normalised with its norm fixed at 1 and frozen for the first epoch.
 */
export const DINO_HEAD_DEFAULTS = {
  hidden: 2048,
  bottleneck: 256,
  outDim: 65536,
  normEps: 1e-12,
} as const;

/** Options of {@link DinoHead}. */
export interface DinoHeadOptions {
  hidden?: number;
  bottleneck?: number;
  outDim?: number;
  rng: Rng;
}

/**
 * DINO's projection head: `mlp` = Linear → GELU → Linear → GELU → Linear (to the bottleneck;
 * names `mlp.0/2/4.*` as DINO's `nn.Sequential`), the bottleneck l2-normalised (ε 1e-12), then a
 * weight-normalised Linear without bias whose per-output norm is fixed at 1: `W = v / ‖v‖`
 * (`last_layer.weight_v`, stored `[bottleneck, outDim]` like every Linear here; PyTorch's
 * `weight_g` is the constant 1 and is not a parameter). The normalisation keeps the output scale
 * fixed, which DINO found to stabilise training (Appendix "Projection head").
 */
export class DinoHead extends Module {
  readonly mlp: MLP;
  readonly lastLayer: DinoLastLayer;

  constructor(
    readonly inDim: number,
    options: DinoHeadOptions,
  ) {
    super();
    checkNumber("inDim", inDim, { integer: true, min: 1 });
    const hidden = options.hidden ?? DINO_HEAD_DEFAULTS.hidden;
    const bottleneck = options.bottleneck ?? DINO_HEAD_DEFAULTS.bottleneck;
    const outDim = options.outDim ?? DINO_HEAD_DEFAULTS.outDim;
    this.mlp = this.registerModule(
      "mlp",
      new MLP(
        [
          { in: inDim, out: hidden, activation: "gelu" },
          { in: hidden, out: hidden, activation: "gelu" },
          { in: hidden, out: bottleneck, activation: null },
        ],
        { rng: options.rng },
      ),
    );
    this.lastLayer = this.registerModule(
      "last_layer",
      new DinoLastLayer(bottleneck, outDim, options.rng),
    );
  }

  get outDim(): number {
    return this.lastLayer.outDim;
  }

  /** `[M, inDim]` → `[M, outDim]`. */
  apply(x: tf.Tensor): tf.Tensor2D {
    if (!(x instanceof tf.Tensor) || x.rank !== 2 || x.shape[1] !== this.inDim)
      throw invalidArgument(
        "x",
        x instanceof tf.Tensor ? `tensor [${x.shape}]` : x,
        `a tensor [M, ${this.inDim}]`,
      );
    return tf.tidy(() => {
      const h = this.mlp.apply(x) as tf.Tensor2D;
      const sumSquares = tf.sum(tf.square(h), -1, true);
      const eps = DINO_HEAD_DEFAULTS.normEps;
      const z = tf.mul(h, tf.rsqrt(tf.maximum(sumSquares, eps * eps)));
      return this.lastLayer.apply(z as tf.Tensor2D);
    });
  }
}

/** The weight-normalised last layer of {@link DinoHead} (norm fixed at 1, no bias). */
export class DinoLastLayer extends Module {
  readonly weightV: tf.Variable;

  constructor(
    readonly inDim: number,
    readonly outDim: number,
    rng: Rng,
  ) {
    super();
    checkNumber("outDim", outDim, { integer: true, min: 1 });
    this.weightV = this.registerParameter("weight_v", truncNormal([inDim, outDim], rng), {
      torchLayout: { kind: "linear" },
    });
  }

  /** The effective weight `v / ‖v‖` (each output unit's column has norm 1). */
  weight(): tf.Tensor2D {
    return tf.tidy(() => tf.div(this.weightV, tf.sqrt(tf.sum(tf.square(this.weightV), 0, true))));
  }

  apply(z: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.matMul(z, this.weight()));
  }
}
