import * as tf from "@tensorflow/tfjs";
import {
  ConfigError,
  LayerNorm,
  Linear,
  Module,
  Rng,
  ShapeError,
  checkNumber,
  describeValue,
  invalidArgument,
  truncNormal,
} from "@sit/core";
import { layerNorm, linear, unpatchify } from "@sit/kernels";
import { Block } from "@sit/vit";
import { sincosPosEmbed2d } from "./sincos";
import { type TokenMaskInput, toTokenMask } from "./token-mask";

/** Options of {@link TransformerDecoder}. */
export interface TransformerDecoderOptions {
  /** Width of the encoder tokens it receives. */
  inDim: number;
  /** Patch grid of the image: side, or [rows, cols]. */
  gridSize: number | [number, number];
  /** Patch side p. */
  patchSize: number;
  /** Image channels. Default 3. */
  outChans?: number;
  /** Decoder width (a multiple of 4 and of numHeads). Default 256. */
  embedDim?: number;
  /** Decoder blocks. Default 4. */
  depth?: number;
  /** Attention heads. Default 8. */
  numHeads?: number;
  /** MLP ratio. Default 4. */
  mlpRatio?: number;
  /** LayerNorm epsilon. Default 1e-6. */
  layerNormEps?: number;
  /** Generator of the initial weights. */
  rng: Rng;
}

/** Options of {@link TransformerDecoder.forward}. */
export interface DecoderForwardOptions {
  /** Token mask `[B, N]` over the patch grid (1/true = masked): those tokens become the mask token. */
  mask?: TokenMaskInput;
  /**
   * `full` (default): `tokens` holds every patch (N, or 1+N with CLS first). `visible`: `tokens`
   * holds only the unmasked patches of each row in grid order (MAE's encoder output; every row
   * must have the same number of them), and `mask` says where they go.
   */
  layout?: "full" | "visible";
}

/** What {@link TransformerDecoder.forward} returns. */
export interface DecoderOutput {
  /** Predicted pixels per patch `[B, N, p·p·C]`, (row, col, channel) order. */
  patches: tf.Tensor3D;
  /** The same as NHWC images `[B, rows·p, cols·p, C]`. */
  image: tf.Tensor4D;
}

/** The `decoder_blocks` container: children named 0, 1, … as PyTorch's ModuleList. */
class BlockList extends Module {
  readonly items: Block[] = [];
  add(block: Block): void {
    this.items.push(this.registerModule(String(this.items.length), block));
  }
}

/**
 * A light MAE-style transformer decoder: encoder tokens → `decoder_embed` (Linear) → masked
 * positions replaced by a learned `mask_token` → fixed 2-D sin-cos `decoder_pos_embed` →
 * `decoder_blocks` (pre-norm ViT blocks) → `decoder_norm` → `decoder_pred` (Linear to the p·p·C
 * pixels of each patch). Names follow MAE. Masks come as data (`[B, N]`, e.g. from @sit/gmml) and
 * are applied with 0/1 arithmetic, never with gather, so gradients work on every backend.
 */
export class TransformerDecoder extends Module {
  readonly inDim: number;
  readonly grid: [number, number];
  readonly patchSize: number;
  readonly outChans: number;
  readonly embedDim: number;
  readonly decoderEmbed: Linear;
  readonly maskToken: tf.Variable;
  readonly decoderPosEmbed: tf.Variable;
  readonly blocks: Block[];
  readonly decoderNorm: LayerNorm;
  readonly decoderPred: Linear;

  constructor(options: TransformerDecoderOptions) {
    super();
    if (options === null || typeof options !== "object")
      throw invalidArgument("options", options, "TransformerDecoderOptions");
    if (!(options.rng instanceof Rng))
      throw invalidArgument("options.rng", options.rng, "an Rng (initial weights are random)");
    const rng = options.rng;
    this.inDim = checkNumber("inDim", options.inDim, { integer: true, min: 1 });
    const g = options.gridSize;
    this.grid =
      typeof g === "number"
        ? [g, g]
        : Array.isArray(g) && g.length === 2
          ? [g[0], g[1]]
          : [Number.NaN, Number.NaN];
    checkNumber("gridSize rows", this.grid[0], { integer: true, min: 1 });
    checkNumber("gridSize cols", this.grid[1], { integer: true, min: 1 });
    this.patchSize = checkNumber("patchSize", options.patchSize, { integer: true, min: 1 });
    this.outChans = checkNumber("outChans", options.outChans ?? 3, { integer: true, min: 1 });
    this.embedDim = checkNumber("embedDim", options.embedDim ?? 256, { integer: true, min: 4 });
    const depth = checkNumber("depth", options.depth ?? 4, { integer: true, min: 1 });
    const numHeads = checkNumber("numHeads", options.numHeads ?? 8, { integer: true, min: 1 });
    if (this.embedDim % numHeads !== 0)
      throw new ConfigError(
        `numHeads: expected a divisor of embedDim ${this.embedDim}, got ${numHeads}`,
      );
    const eps = options.layerNormEps ?? 1e-6;
    const n = this.grid[0] * this.grid[1];
    const pos = sincosPosEmbed2d(this.embedDim, this.grid[0], this.grid[1], true);

    this.decoderEmbed = this.registerModule(
      "decoder_embed",
      new Linear(this.inDim, this.embedDim, { rng }),
    );
    this.maskToken = this.registerParameter("mask_token", truncNormal([1, 1, this.embedDim], rng));
    // Fixed, as MAE's (a parameter with requires_grad=False, so MAE checkpoints carry it).
    this.decoderPosEmbed = this.registerParameter(
      "decoder_pos_embed",
      tf.tensor3d(pos, [1, 1 + n, this.embedDim]),
      {
        trainable: false,
      },
    );
    const list = new BlockList();
    for (let i = 0; i < depth; i++)
      list.add(
        new Block(this.embedDim, numHeads, { mlpRatio: options.mlpRatio, layerNormEps: eps, rng }),
      );
    this.registerModule("decoder_blocks", list);
    this.blocks = list.items;
    this.decoderNorm = this.registerModule("decoder_norm", new LayerNorm(this.embedDim, eps));
    const pixels = this.patchSize * this.patchSize * this.outChans;
    this.decoderPred = this.registerModule(
      "decoder_pred",
      new Linear(this.embedDim, pixels, { rng }),
    );
  }

  /** Number of patches of the grid. */
  get numPatches(): number {
    return this.grid[0] * this.grid[1];
  }

  /** Decode encoder tokens `[B, T, inDim]` (see {@link DecoderForwardOptions} for T) into patch pixels. */
  forward(tokens: tf.Tensor, options: DecoderForwardOptions = {}): DecoderOutput {
    const n = this.numPatches;
    if (!(tokens instanceof tf.Tensor) || tokens.rank !== 3 || tokens.shape[2] !== this.inDim)
      throw new ShapeError(`tokens: expected [B, T, ${this.inDim}], got ${describeValue(tokens)}`);
    const [b, t] = tokens.shape;
    const layout = options.layout ?? "full";
    if (layout !== "full" && layout !== "visible")
      throw invalidArgument("layout", layout, '"full" or "visible"');
    const mask = options.mask === undefined ? undefined : toTokenMask(options.mask, b, n);
    let scatter: tf.Tensor3D | undefined;
    try {
      let hasCls: boolean;
      if (layout === "full") {
        if (t !== n && t !== n + 1)
          throw new ShapeError(
            `tokens: expected ${n} patch tokens (or ${n + 1} with CLS) for the ${this.grid[0]}×${this.grid[1]} grid, got ${t}`,
          );
        hasCls = t === n + 1;
      } else {
        if (!mask)
          throw invalidArgument(
            "mask",
            options.mask,
            'a [B, N] mask (required with layout "visible")',
          );
        const { matrix, visible } = visibleScatter(mask, b, n);
        scatter = matrix;
        if (t !== visible && t !== visible + 1)
          throw new ShapeError(
            `tokens: expected the ${visible} visible tokens per row (or ${visible + 1} with CLS), got ${t}`,
          );
        hasCls = t === visible + 1;
      }
      const result = tf.tidy(() => {
        const d = this.embedDim;
        const x = linear(tokens, this.decoderEmbed.weight, this.decoderEmbed.bias);
        const cls = hasCls ? tf.slice(x, [0, 0, 0], [b, 1, d]) : undefined;
        let patches = hasCls ? tf.slice(x, [0, 1, 0], [b, x.shape[1]! - 1, d]) : x;
        if (scatter) patches = tf.matMul(scatter, patches); // visible → grid positions, zeros elsewhere
        if (mask) {
          const m = tf.expandDims(mask, 2);
          const kept = scatter ? patches : tf.mul(patches, tf.sub(1, m));
          patches = tf.add(kept, tf.mul(m, this.maskToken));
        }
        const pos = hasCls
          ? this.decoderPosEmbed
          : tf.slice(this.decoderPosEmbed, [0, 1, 0], [1, n, d]);
        let h: tf.Tensor = tf.add(cls ? tf.concat([cls, patches], 1) : patches, pos);
        for (const block of this.blocks) h = block.apply(h).output;
        h = layerNorm(h, this.decoderNorm.weight, this.decoderNorm.bias, this.decoderNorm.eps);
        let pred = linear(h, this.decoderPred.weight, this.decoderPred.bias);
        if (hasCls) pred = tf.slice(pred, [0, 1, 0], [b, n, pred.shape[2]!]);
        return { patches: pred as tf.Tensor3D, image: unpatchify(pred, this.patchSize, this.grid) };
      });
      return result;
    } finally {
      mask?.dispose();
      scatter?.dispose();
    }
  }
}

/**
 * The `[B, N, V]` 0/1 matrix that places row b's V visible tokens (in grid order) at their grid
 * positions: a batched product instead of a gather/scatter (gather has no gradient on wasm).
 */
function visibleScatter(
  mask: tf.Tensor2D,
  b: number,
  n: number,
): { matrix: tf.Tensor3D; visible: number } {
  const m = mask.dataSync();
  let visible = -1;
  for (let r = 0; r < b; r++) {
    let count = 0;
    for (let j = 0; j < n; j++) if (m[r * n + j] === 0) count++;
    if (visible === -1) visible = count;
    else if (count !== visible)
      throw new ShapeError(
        `mask: layout "visible" needs the same number of visible tokens in every row, got ${visible} in row 0 and ${count} in row ${r}`,
      );
  }
  const data = new Float32Array(b * n * visible);
  for (let r = 0; r < b; r++) {
    let k = 0;
    for (let j = 0; j < n; j++) if (m[r * n + j] === 0) data[(r * n + j) * visible + k++] = 1;
  }
  return { matrix: tf.tensor3d(data, [b, n, visible]), visible };
}
