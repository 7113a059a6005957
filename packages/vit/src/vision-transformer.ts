import * as tf from "@tensorflow/tfjs";
import {
  ConfigError,
  LayerNorm,
  Module,
  Rng,
  ShapeError,
  checkNumber,
  describeValue,
  invalidArgument,
  truncNormal,
} from "@sit/core";
import { transformerStack } from "@sit/kernels";
import { Block, type DropScales } from "./block";
import { gradientCheckpoint } from "./checkpoint";
import { PatchEmbed, applyNorm } from "./layers";
import { interpolatePosEmbed } from "./pos-embed";
import { embedTokens, splitTokens } from "./token-ops";
import { VIT_DEFAULTS, VIT_PRESETS } from "./presets";

/** Configuration of a {@link VisionTransformer}; defaults are ViT-B/16 at 224 px as in SiT. */
export interface VisionTransformerConfig {
  /** Training image size (square, or [height, width]); fixes the position-embedding grid. Default 224. */
  imgSize?: number | [number, number];
  /** Patch side. Default 16. */
  patchSize?: number;
  /** Image channels. Default 3. */
  inChans?: number;
  /** Token width D. Default 768. */
  embedDim?: number;
  /** Number of blocks (≥ 1). Default 12. */
  depth?: number;
  /** Attention heads; must divide `embedDim`. Default 12. */
  numHeads?: number;
  /** MLP hidden width as a multiple of D. Default 4. */
  mlpRatio?: number;
  /** Bias on the qkv projection. Default true (SiT's presets). */
  qkvBias?: boolean;
  /** LayerNorm epsilon. Default 1e-6. */
  layerNormEps?: number;
  /** Stochastic depth: block i drops with probability `dropPathRate·i/(depth−1)`. Default 0. */
  dropPathRate?: number;
  /**
   * Recompute each block in the backward pass instead of keeping its intermediates (gradient
   * checkpointing): about one extra forward of compute for a fraction of the memory. Needed on
   * wasm for depth 12 at batch 64. A number k recomputes only the first k blocks (the others keep
   * their intermediates): for a heap with room for some blocks but not all. Default false;
   * {@link VitForwardOptions.checkpointBlocks} overrides it per call.
   */
  checkpointBlocks?: boolean | number;
  /** Generator of the initial weights (and, split off, of the drop-path draws). */
  rng: Rng;
}

/** Options of {@link VisionTransformer.forward}. */
export interface VitForwardOptions {
  /** Indices of blocks (negative counts from the end) whose outputs to return, in that order. */
  intermediates?: number[];
  /**
   * Apply the final LayerNorm to the returned intermediates, as DINO's
   * `get_intermediate_layers`. Default false (raw block outputs).
   */
  normalizeIntermediates?: boolean;
  /**
   * Return attention probabilities `[B, H, 1+N, 1+N]`: of every block (true) or of the last block
   * only ("last": the other blocks keep their fused kernels). Default false.
   */
  attentions?: boolean | "last";
  /** Generator of this call's drop-path draws (default: the model's own). */
  rng?: Rng;
  /**
   * Gradient checkpointing for this call: every block (true), none (false) or the first k blocks
   * (default: the model's setting).
   */
  checkpointBlocks?: boolean | number;
}

/** What {@link VisionTransformer.forward} returns (all after the final LayerNorm except intermediates). */
export interface VitOutput {
  /** CLS token `[B, D]`. */
  cls: tf.Tensor2D;
  /** Patch tokens `[B, N, D]`, row-major over the patch grid. */
  patchTokens: tf.Tensor3D;
  /** All tokens `[B, 1+N, D]`, CLS first. */
  tokens: tf.Tensor3D;
  /** Outputs of the requested blocks `[B, 1+N, D]`. */
  intermediates?: tf.Tensor3D[];
  /** Attention probabilities `[B, H, 1+N, 1+N]` of every block (or of the last one only). */
  attentions?: tf.Tensor4D[];
}

function sizePair(name: string, v: number | [number, number]): [number, number] {
  if (typeof v === "number") {
    checkNumber(name, v, { integer: true, min: 1 });
    return [v, v];
  }
  if (!Array.isArray(v) || v.length !== 2)
    throw invalidArgument(name, v, "a positive integer or [height, width]");
  return [
    checkNumber(`${name}[0]`, v[0], { integer: true, min: 1 }),
    checkNumber(`${name}[1]`, v[1], { integer: true, min: 1 }),
  ];
}

/**
 * Vision Transformer backbone with timm/DINO/SiT parameter names (`cls_token`, `pos_embed`,
 * `patch_embed.proj.*`, `blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`, `norm.*`):
 * patch embedding, one CLS token, learned position embedding (bicubically resampled, DINO-style,
 * when the input size differs from `imgSize`), pre-norm blocks with stochastic depth, final
 * LayerNorm. Images are NHWC float32. Every operation goes through @sit/kernels.
 */
export class VisionTransformer extends Module {
  readonly imgSize: [number, number];
  readonly patchSize: number;
  readonly inChans: number;
  readonly embedDim: number;
  readonly depth: number;
  readonly numHeads: number;
  /** Patch grid of the trained size (rows, cols). */
  readonly grid: [number, number];
  readonly clsToken: tf.Variable;
  readonly posEmbed: tf.Variable;
  readonly patchEmbed: PatchEmbed;
  readonly blocks: Block[];
  readonly norm: LayerNorm;
  /** Default of {@link VitForwardOptions.checkpointBlocks}. */
  checkpointBlocks: boolean | number;
  private readonly dropPathRng: Rng;

  constructor(config: VisionTransformerConfig) {
    super();
    if (config === null || typeof config !== "object")
      throw invalidArgument("config", config, "a VisionTransformerConfig object");
    if (!(config.rng instanceof Rng))
      throw invalidArgument("config.rng", config.rng, "an Rng (initial weights are random)");
    const d = VIT_DEFAULTS;
    this.imgSize = sizePair("imgSize", config.imgSize ?? d.imgSize);
    this.patchSize = checkNumber("patchSize", config.patchSize ?? d.patchSize, {
      integer: true,
      min: 1,
    });
    this.inChans = checkNumber("inChans", config.inChans ?? d.inChans, { integer: true, min: 1 });
    this.embedDim = checkNumber("embedDim", config.embedDim ?? d.embedDim, {
      integer: true,
      min: 1,
    });
    this.depth = checkNumber("depth", config.depth ?? d.depth, { integer: true, min: 1 });
    this.numHeads = checkNumber("numHeads", config.numHeads ?? d.numHeads, {
      integer: true,
      min: 1,
    });
    if (this.embedDim % this.numHeads !== 0)
      throw new ConfigError(
        `numHeads: expected a divisor of embedDim ${this.embedDim}, got ${this.numHeads}`,
      );
    const [h, w] = this.imgSize;
    if (h % this.patchSize !== 0 || w % this.patchSize !== 0)
      throw new ConfigError(
        `imgSize: expected a multiple of patchSize ${this.patchSize}, got ${describeValue(config.imgSize ?? d.imgSize)}`,
      );
    const rate = checkNumber("dropPathRate", config.dropPathRate ?? d.dropPathRate, {
      min: 0,
      max: 1,
      maxExclusive: true,
    });
    this.grid = [h / this.patchSize, w / this.patchSize];
    const n = this.grid[0] * this.grid[1];
    const rng = config.rng;

    this.clsToken = this.registerParameter("cls_token", truncNormal([1, 1, this.embedDim], rng));
    this.posEmbed = this.registerParameter(
      "pos_embed",
      truncNormal([1, 1 + n, this.embedDim], rng),
    );
    this.patchEmbed = this.registerModule(
      "patch_embed",
      new PatchEmbed(this.inChans, this.patchSize, this.embedDim, rng),
    );
    const blocks = new BlocksList();
    this.blocks = [];
    for (let i = 0; i < this.depth; i++) {
      // torch.linspace(0, rate, depth)
      const dropPath = this.depth === 1 ? 0 : (rate * i) / (this.depth - 1);
      this.blocks.push(
        blocks.add(
          new Block(this.embedDim, this.numHeads, {
            mlpRatio: config.mlpRatio,
            qkvBias: config.qkvBias,
            layerNormEps: config.layerNormEps,
            dropPath,
            rng,
          }),
        ),
      );
    }
    this.registerModule("blocks", blocks);
    this.norm = this.registerModule(
      "norm",
      new LayerNorm(this.embedDim, config.layerNormEps ?? d.layerNormEps),
    );
    this.dropPathRng = rng.split();
    this.checkpointBlocks =
      typeof config.checkpointBlocks === "number"
        ? this.recomputedBlocks(config.checkpointBlocks)
        : config.checkpointBlocks === true;
  }

  /** How many blocks, from the first, a `checkpointBlocks` setting recomputes. */
  private recomputedBlocks(setting: boolean | number): number {
    if (typeof setting === "boolean") return setting ? this.depth : 0;
    return checkNumber("checkpointBlocks", setting, { integer: true, min: 0, max: this.depth });
  }

  /** Number of patch tokens at the trained size. */
  get numPatches(): number {
    return this.grid[0] * this.grid[1];
  }

  /** Check an input batch and return its patch grid. */
  private checkImages(images: unknown): [number, number] {
    if (!(images instanceof tf.Tensor) || images.rank !== 4 || images.dtype !== "float32")
      throw new ShapeError(
        `images: expected a float32 NHWC tensor [B, H, W, ${this.inChans}], got ${describeValue(images)}`,
      );
    const [, h, w, c] = images.shape;
    if (c !== this.inChans)
      throw new ShapeError(
        `images: expected ${this.inChans} channels (NHWC, last axis), got shape [${images.shape}]`,
      );
    if (h % this.patchSize !== 0 || w % this.patchSize !== 0)
      throw new ShapeError(
        `images: expected height and width divisible by the patch size ${this.patchSize}, got ${h}×${w}`,
      );
    return [h / this.patchSize, w / this.patchSize];
  }

  /** The position embedding for a patch grid (the parameter itself at the trained grid). */
  positionEmbedding(grid: [number, number]): tf.Tensor3D {
    return interpolatePosEmbed(this.posEmbed, this.grid, grid);
  }

  /** Run the backbone on NHWC `images [B, H, W, C]` (H, W multiples of the patch size). */
  forward(images: tf.Tensor, options: VitForwardOptions = {}): VitOutput {
    const grid = this.checkImages(images);
    const wanted = this.resolveIntermediates(options.intermediates);
    const rng = options.rng ?? this.dropPathRng;
    return tidyObject(() => {
      const b = images.shape[0];
      const patches = this.patchEmbed.apply(images);
      // [cls; patches] + pos as one taped op that saves nothing (token-ops.ts).
      let x = embedTokens(patches, this.clsToken, this.positionEmbedding(grid));
      const intermediates = new Map<number, tf.Tensor3D>();
      const attentions: tf.Tensor4D[] = [];
      // Checkpointing only matters while gradients are recorded (gradientCheckpoint.ts).
      const recording = tf.engine().state.gradientDepth > 0;
      const setting = this.recomputedBlocks(options.checkpointBlocks ?? this.checkpointBlocks);
      const recomputed = recording ? setting : 0;
      // Consecutive blocks with no attention map or checkpoint to make run as one
      // transformerStack, each with its drop-path factors: one fused kernel for all of them per
      // direction on webgpu (a taped one for a student, an EMA teacher's or inference's
      // without), one transformerBlock each elsewhere.
      let run: { block: Block; scales: DropScales | null }[] = [];
      const flush = () => {
        if (run.length === 0) return;
        const weights = run.map((r) => r.block.weights());
        const dropScales = run.map((r) =>
          r.scales
            ? ([tf.tensor1d(r.scales[0]), tf.tensor1d(r.scales[1])] as [tf.Tensor, tf.Tensor])
            : null,
        );
        x = transformerStack(x, weights, { numHeads: this.numHeads, dropScales });
        run = [];
      };
      this.blocks.forEach((block, i) => {
        const wantAttention =
          options.attentions === true || (options.attentions === "last" && i === this.depth - 1);
        const dropScales = block.drawDropScales(b, rng);
        if (!wantAttention && i >= recomputed) run.push({ block, scales: dropScales });
        else {
          flush();
          x = this.applyBlock(block, x, { dropScales, wantAttention, attentions }, i < recomputed);
        }
        if (wanted.includes(i)) {
          flush();
          intermediates.set(
            i,
            options.normalizeIntermediates ? (applyNorm(this.norm, x) as tf.Tensor3D) : x,
          );
        }
      });
      flush();
      const tokens = applyNorm(this.norm, x) as tf.Tensor3D;
      const out: VitOutput = { ...splitTokens(tokens), tokens };
      if (options.intermediates) out.intermediates = wanted.map((i) => intermediates.get(i)!);
      if (options.attentions) out.attentions = attentions;
      return out;
    });
  }

  /**
   * One block on its own: with drop-path factors, its attention map (pushed onto `attentions`)
   * or gradient checkpointing (`recompute`).
   */
  private applyBlock(
    block: Block,
    x: tf.Tensor3D,
    o: { dropScales: DropScales | null; wantAttention: boolean; attentions: tf.Tensor4D[] },
    recompute: boolean,
  ): tf.Tensor3D {
    const { dropScales, wantAttention, attentions } = o;
    if (!recompute) {
      const r = block.apply(x, { dropScales, returnAttention: wantAttention });
      if (r.attention) attentions.push(r.attention);
      return r.output;
    }
    let attention: tf.Tensor4D | undefined;
    const y = gradientCheckpoint(
      (xi) => {
        const r = block.apply(xi, { dropScales, returnAttention: wantAttention && !attention });
        // keep the probabilities of the first (forward) evaluation beyond the op's tidy
        if (r.attention) attention = tf.keep(r.attention);
        return r.output;
      },
      x,
      block.parameters().filter((p) => p.trainable),
    ) as tf.Tensor3D;
    if (attention) {
      attentions.push(tf.clone(attention)); // tracked by this scope again
      attention.dispose();
    }
    return y;
  }

  private resolveIntermediates(list: number[] | undefined): number[] {
    if (list === undefined) return [];
    if (!Array.isArray(list))
      throw invalidArgument("intermediates", list, "an array of block indices");
    return list.map((i, k) => {
      checkNumber(`intermediates[${k}]`, i, {
        integer: true,
        min: -this.depth,
        max: this.depth - 1,
      });
      return i < 0 ? this.depth + i : i;
    });
  }
}

/** `tf.tidy` for a function returning an object of tensors (an interface, not an index type). */
function tidyObject<T extends object>(fn: () => T): T {
  return tf.tidy(() => fn() as unknown as tf.TensorContainer) as unknown as T;
}

/** The `blocks` container: children named 0, 1, … as PyTorch's ModuleList. */
class BlocksList extends Module {
  private count = 0;
  add(block: Block): Block {
    return this.registerModule(String(this.count++), block);
  }
}

type PresetOptions = Omit<VisionTransformerConfig, "embedDim" | "depth" | "numHeads">;

/** ViT-Tiny (D 192, depth 12, 3 heads; patch 16 unless given), as SiT's `vit_tiny`. */
export function vitTiny(options: PresetOptions): VisionTransformer {
  return new VisionTransformer({ ...options, ...VIT_PRESETS.tiny });
}

/** ViT-Small (D 384, depth 12, 6 heads; patch 16 unless given), as SiT's `vit_small` (its default). */
export function vitSmall(options: PresetOptions): VisionTransformer {
  return new VisionTransformer({ ...options, ...VIT_PRESETS.small });
}

/** ViT-Base (D 768, depth 12, 12 heads; patch 16 unless given), as SiT's `vit_base`. */
export function vitBase(options: PresetOptions): VisionTransformer {
  return new VisionTransformer({ ...options, ...VIT_PRESETS.base });
}
