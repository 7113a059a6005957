import * as tf from "@tensorflow/tfjs";
import {
  Linear,
  Module,
  Rng,
  ShapeError,
  checkNumber,
  describeValue,
  invalidArgument,
  kaimingUniform,
} from "@sit/core";
import { fusedLinear, linear, unpatchifyAddBias } from "@sit/kernels";

/** Options of {@link SitReconstructionHead}. */
export interface SitReconstructionHeadOptions {
  /** Token width D of the backbone. */
  embedDim: number;
  /** Patch side p of the backbone. */
  patchSize: number;
  /** Image channels C. Default 3. */
  outChans?: number;
  /** Generator of the initial weights. */
  rng: Rng;
}

/** SiT's `mlp`: three Linear(D, D), each followed by GELU (children `0`, `2`, `4` as nn.Sequential). */
class RecMlp extends Module {
  readonly layers: Linear[];
  constructor(dim: number, rng: Rng) {
    super();
    this.layers = [0, 2, 4].map((i) =>
      this.registerModule(String(i), new Linear(dim, dim, { rng })),
    );
  }
}

/**
 * SiT's transposed convolution with kernel = stride = p, `ConvTranspose2d(D, C, p, p)`, as a
 * per-token linear map to the p·p·C pixels of its patch: the weight is kept `[D, p·p·C]`
 * (columns in (row, col, channel) order; tagged for @sit/core's converters, PyTorch
 * `[D, C, p, p]`) and the bias has one value per channel, shared by every pixel, as PyTorch's.
 */
class PatchToPixels extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(dim: number, outChans: number, p: number, rng: Rng) {
    super();
    // PyTorch's default ConvTranspose2d init: fan-in = weight.size(1)·p·p = C·p·p.
    const fanIn = outChans * p * p;
    this.weight = this.registerParameter(
      "weight",
      kaimingUniform([dim, p * p * outChans], fanIn, rng),
      {
        torchLayout: { kind: "convTranspose2d", torchShape: [dim, outChans, p, p] },
      },
    );
    this.bias = this.registerParameter("bias", kaimingUniform([outChans], fanIn, rng));
  }
}

/**
 * SiT's reconstruction head (`RECHead`): per patch token 3 × (Linear(D, D) + GELU), then the
 * transposed conv back to pixels, giving an NHWC image `[B, gh·p, gw·p, C]` of the backbone's
 * input size. Parameter names as in the SiT code: `mlp.0.*`, `mlp.2.*`, `mlp.4.*`,
 * `convTrans.weight`, `convTrans.bias` (loads SiT's PyTorch weights through @sit/core's converters).
 */
export class SitReconstructionHead extends Module {
  readonly embedDim: number;
  readonly patchSize: number;
  readonly outChans: number;
  readonly mlp: RecMlp;
  readonly convTrans: PatchToPixels;

  constructor(options: SitReconstructionHeadOptions) {
    super();
    if (options === null || typeof options !== "object")
      throw invalidArgument("options", options, "{ embedDim, patchSize, outChans?, rng }");
    if (!(options.rng instanceof Rng))
      throw invalidArgument("options.rng", options.rng, "an Rng (initial weights are random)");
    this.embedDim = checkNumber("embedDim", options.embedDim, { integer: true, min: 1 });
    this.patchSize = checkNumber("patchSize", options.patchSize, { integer: true, min: 1 });
    this.outChans = checkNumber("outChans", options.outChans ?? 3, { integer: true, min: 1 });
    this.mlp = this.registerModule("mlp", new RecMlp(this.embedDim, options.rng));
    this.convTrans = this.registerModule(
      "convTrans",
      new PatchToPixels(this.embedDim, this.outChans, this.patchSize, options.rng),
    );
  }

  /**
   * Patch tokens `[B, N, D]` (no CLS) → image `[B, gh·p, gw·p, C]`. `gridSize` = [gh, gw]
   * defaults to the square grid √N × √N, as SiT's head assumes.
   */
  apply(patchTokens: tf.Tensor, gridSize?: [number, number]): tf.Tensor4D {
    if (
      !(patchTokens instanceof tf.Tensor) ||
      patchTokens.rank !== 3 ||
      patchTokens.shape[2] !== this.embedDim
    )
      throw new ShapeError(
        `patchTokens: expected [B, N, ${this.embedDim}] (patch tokens without CLS), got ${describeValue(patchTokens)}`,
      );
    const n = patchTokens.shape[1] as number;
    const side = Math.round(Math.sqrt(n));
    const grid = gridSize ?? [side, side];
    if (!Array.isArray(grid) || grid.length !== 2 || grid[0] * grid[1] !== n)
      throw new ShapeError(
        `gridSize: expected [rows, cols] with rows·cols = ${n} (the number of patch tokens), got ${describeValue(gridSize ?? grid)}`,
      );
    return tf.tidy(() => {
      // Each GELU is applied by the next layer as it loads its input (`geluInput`): on webgpu one
      // GEMM dispatch per layer (two backward) and no separate activation kernel; elsewhere
      // exactly gelu then linear.
      const [first, ...rest] = this.mlp.layers;
      let x = linear(patchTokens, first.weight, first.bias);
      for (const layer of rest) x = fusedLinear(x, layer.weight, layer.bias, { geluInput: true });
      const pixels = fusedLinear(x, this.convTrans.weight, null, { geluInput: true }); // [B, N, p·p·C]
      // Back to pixels with the per-channel bias: one kernel each way on webgpu.
      return unpatchifyAddBias(pixels, this.patchSize, grid, this.convTrans.bias);
    });
  }
}
