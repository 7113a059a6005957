import * as tf from "@tensorflow/tfjs";
import { type LayerNorm, Linear, Module, type Rng, kaimingUniform } from "@sit/core";
import { fusedLinear, layerNorm, linear, packedSelfAttention, patchify } from "@sit/kernels";

/** Apply one of core's LayerNorm modules through the kernels seam. */
export function applyNorm(norm: LayerNorm, x: tf.Tensor): tf.Tensor {
  return layerNorm(x, norm.weight, norm.bias, norm.eps);
}

/** Apply one of core's Linear modules through the kernels seam. */
export function applyLinear(layer: Linear, x: tf.Tensor): tf.Tensor {
  return linear(x, layer.weight, layer.bias);
}

/**
 * The projection of {@link PatchEmbed}: the weight of PyTorch's Conv2d(C→D, kernel = stride = p)
 * kept as the `[p·p·C, D]` matrix that multiplies flattened NHWC patches (rows in (row, col,
 * channel) order), tagged so that @sit/core's converters map it to and from `[D, C, p, p]`.
 */
export class PatchProjection extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(inChans: number, patchSize: number, embedDim: number, rng: Rng) {
    super();
    const fanIn = inChans * patchSize * patchSize;
    // PyTorch's Conv2d default init (kept by timm/DINO/SiT for the patch embedding).
    this.weight = this.registerParameter("weight", kaimingUniform([fanIn, embedDim], fanIn, rng), {
      torchLayout: { kind: "conv2d", torchShape: [embedDim, inChans, patchSize, patchSize] },
    });
    this.bias = this.registerParameter("bias", kaimingUniform([embedDim], fanIn, rng));
  }
}

/**
 * Patch embedding (timm's `patch_embed`): non-overlapping p × p patches of an NHWC image, each
 * projected to D — a Conv2d with kernel = stride = p, computed as patchify + matMul.
 */
export class PatchEmbed extends Module {
  readonly proj: PatchProjection;

  constructor(
    readonly inChans: number,
    readonly patchSize: number,
    readonly embedDim: number,
    rng: Rng,
  ) {
    super();
    this.proj = this.registerModule("proj", new PatchProjection(inChans, patchSize, embedDim, rng));
  }

  /** `images [B, H, W, C]` → tokens `[B, (H/p)·(W/p), D]`. */
  apply(images: tf.Tensor): tf.Tensor3D {
    return tf.tidy(
      () =>
        linear(patchify(images, this.patchSize), this.proj.weight, this.proj.bias) as tf.Tensor3D,
    );
  }
}

/** timm's `Attention`: fused `qkv` projection (one `[D, 3D]` weight), heads, output `proj`. */
export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    options: { qkvBias: boolean; rng: Rng },
  ) {
    super();
    this.qkv = this.registerModule(
      "qkv",
      new Linear(dim, 3 * dim, { bias: options.qkvBias, rng: options.rng }),
    );
    this.proj = this.registerModule("proj", new Linear(dim, dim, { rng: options.rng }));
  }

  /**
   * `x [B, N, D]` → `[B, N, D]`, plus the softmax probabilities `[B, H, N, N]` on request. With
   * `residual`, returns `residual + rowScale · attention(x)` (rowScale `[B]`: per-sample
   * stochastic-depth factors, optional), added in the output projection's kernel where the
   * backend fuses it.
   */
  apply(
    x: tf.Tensor,
    returnAttention = false,
    residual: tf.Tensor | null = null,
    rowScale: tf.Tensor | null = null,
  ): { output: tf.Tensor3D; attention?: tf.Tensor4D } {
    return tf.tidy(() => {
      const r = packedSelfAttention(applyLinear(this.qkv, x), {
        numHeads: this.numHeads,
        returnProbabilities: returnAttention,
      });
      const output = fusedLinear(r.output, this.proj.weight, this.proj.bias, {
        residual,
        rowScale,
      }) as tf.Tensor3D;
      return r.probabilities ? { output, attention: r.probabilities } : { output };
    });
  }
}

/** timm's `Mlp`: `fc1` (D → hidden) → exact GELU → `fc2` (hidden → D). */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number, rng: Rng) {
    super();
    this.fc1 = this.registerModule("fc1", new Linear(dim, hidden, { rng }));
    this.fc2 = this.registerModule("fc2", new Linear(hidden, dim, { rng }));
  }

  /**
   * `fc2(gelu(fc1(x)))`; with `residual`, `residual + rowScale · fc2(…)` (rowScale `[B]`
   * optional). GELU is applied as fc2 loads fc1's output, so on webgpu each layer is one GEMM
   * dispatch and only the pre-activation is kept for backward.
   */
  apply(
    x: tf.Tensor,
    residual: tf.Tensor | null = null,
    rowScale: tf.Tensor | null = null,
  ): tf.Tensor {
    return tf.tidy(() =>
      fusedLinear(applyLinear(this.fc1, x), this.fc2.weight, this.fc2.bias, {
        geluInput: true,
        residual,
        rowScale,
      }),
    );
  }
}
