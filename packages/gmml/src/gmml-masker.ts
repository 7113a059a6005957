import { ConfigError, type Rng, checkNumber, describeValue, invalidArgument } from "@sit/core";
import {
  type GmmlBlock,
  type GmmlBlockOptions,
  type GmmlGeometry,
  checkGmmlBlockOptions,
  checkReachable,
  drawGmmlBlocks,
  gmmlGeometry,
} from "./blocks";
import {
  type CorruptionPlan,
  shuffleSourceBlock,
  writeIdentitySources,
  writeImageSources,
} from "./corruption-plan";
import {
  GMML_FILLS,
  type GmmlFill,
  type ImageView,
  copyMaskedFrom,
  fillMaskedConstant,
  fillMaskedNoise,
  shuffleBlock,
} from "./fills";
import { type ImageInput, type MaskingBuffers, outputArrays, readImageBatch } from "./images";
import { NormalStream } from "./normal-stream";
import type { MaskingResult, MaskingStrategy } from "./strategy";
import { pixelToTokenMask } from "./token-mask";

/** {@link GmmlMasker}'s defaults: SiT v3's (the recipes' config schemas are built from them). */
export const GMML_DEFAULTS = {
  ratio: 0.5,
  fill: "zeros",
  align: 1,
  maxBlockFraction: 0.3,
  replaceProb: 0.5,
  replaceRatio: 0.3,
  excludeSelf: false,
  tokenThreshold: 0.5,
} as const satisfies Omit<Required<GmmlMaskerOptions>, "patchSize">;

/** Options of {@link GmmlMasker}; the defaults are SiT v3's ({@link GMML_DEFAULTS}). */
export interface GmmlMaskerOptions {
  /** `drop_perc` r in (0, 1]: covered fraction drawn in [min(0.5, r), r] (default 0.5). */
  ratio?: number;
  /** Fill, or fills to choose from uniformly per image (default `"zeros"`). */
  fill?: GmmlFill | readonly GmmlFill[];
  /** Block grid: 1 = pixel groups (default, as the reference), the patch size = whole tokens. */
  align?: number;
  /** Block sides below floor(maxBlockFraction · side) (default 0.3). */
  maxBlockFraction?: number;
  /**
   * Probability that an image's corruption is replaced by blocks pasted from another image of the
   * batch at the same positions (§3.3; default 0.5, 0 disables). The reference derives it as
   * 1/(k+1) from its k fill types.
   */
  replaceProb?: number;
  /** Exact covered fraction of a replacement (`drop_replace`, default 0.3), in (0, 1]. */
  replaceRatio?: number;
  /** Draw the replacement partner among the *other* images (default false: j may equal i, as the reference). */
  excludeSelf?: boolean;
  /** When given, results carry a token mask for square patches of this size. */
  patchSize?: number;
  /** Token-mask threshold on the masked fraction of a patch (default 0.5). */
  tokenThreshold?: number;
}

/** How one image of the batch was corrupted. */
export interface GmmlImageRecord {
  /** `blocks`: §3.1 fill of the image itself; `replacement`: §3.3 paste from image `partner`. */
  kind: "blocks" | "replacement";
  /** The fill used (`blocks` only). */
  fill?: GmmlFill;
  /** Index of the image pasted from (`replacement` only; may equal this image's index). */
  partner?: number;
  /** Pixels the block loop had to cover. */
  target: number;
  /** Pixels covered. */
  covered: number;
  /** The blocks in drawing order, clipped to the image. */
  blocks: GmmlBlock[];
}

/** {@link GmmlMasker.apply}'s result: the common {@link MaskingResult} plus per-image records. */
export interface GmmlMaskingResult extends MaskingResult {
  images: GmmlImageRecord[];
}

/** {@link GmmlMasker.plan}'s result: a {@link CorruptionPlan} plus per-image records. */
export interface GmmlCorruptionPlan extends CorruptionPlan {
  images: GmmlImageRecord[];
}

/**
 * GMML corruption of a batch (SiT §3): per image, rectangles of pixels (sides below 30% of the image
 * side, overlaps allowed) until a drawn fraction of the image is covered, filled with zeros, noise or
 * another block of the image; and, with probability `replaceProb` per image, instead blocks
 * covering `replaceRatio` of the *clean* image pasted from a random image of the batch at the same
 * positions. Works on typed arrays (no tfjs ops); the input is never modified.
 *
 * In the reference every view is corrupted first and the replacement then overwrites some of them;
 * here the replacement decision comes first so replaced images skip the discarded corruption. The
 * distribution is the same.
 */
export class GmmlMasker implements MaskingStrategy {
  readonly ratio: number;
  readonly fills: readonly GmmlFill[];
  readonly align: number;
  readonly maxBlockFraction: number;
  readonly replaceProb: number;
  readonly replaceRatio: number;
  readonly excludeSelf: boolean;
  readonly patchSize: number | undefined;
  readonly tokenThreshold: number;
  private geometryCache: GmmlGeometry | undefined;

  constructor(options: GmmlMaskerOptions = {}) {
    if (typeof options !== "object" || options === null)
      throw invalidArgument("options", options, "an options object");
    this.ratio = options.ratio ?? GMML_DEFAULTS.ratio;
    this.align = options.align ?? GMML_DEFAULTS.align;
    this.maxBlockFraction = options.maxBlockFraction ?? GMML_DEFAULTS.maxBlockFraction;
    checkGmmlBlockOptions("", this.blockOptions(this.ratio));
    const fill = options.fill ?? GMML_DEFAULTS.fill;
    const fills = typeof fill === "string" ? [fill] : fill;
    if (
      !Array.isArray(fills) ||
      fills.length === 0 ||
      !fills.every((f) => (GMML_FILLS as readonly string[]).includes(f))
    )
      throw invalidArgument(
        "fill",
        fill,
        `one of ${GMML_FILLS.map((f) => `"${f}"`).join(", ")} or a non-empty array of them`,
      );
    this.fills = [...fills];
    this.replaceProb = checkNumber(
      "replaceProb",
      options.replaceProb ?? GMML_DEFAULTS.replaceProb,
      { min: 0, max: 1 },
    );
    this.replaceRatio = checkNumber(
      "replaceRatio",
      options.replaceRatio ?? GMML_DEFAULTS.replaceRatio,
      {
        min: 0,
        max: 1,
        minExclusive: true,
      },
    );
    const excludeSelf = options.excludeSelf ?? GMML_DEFAULTS.excludeSelf;
    if (typeof excludeSelf !== "boolean")
      throw invalidArgument("excludeSelf", excludeSelf, "a boolean");
    this.excludeSelf = excludeSelf;
    if (options.patchSize !== undefined)
      checkNumber("patchSize", options.patchSize, { min: 1, integer: true });
    this.patchSize = options.patchSize;
    this.tokenThreshold = checkNumber(
      "tokenThreshold",
      options.tokenThreshold ?? GMML_DEFAULTS.tokenThreshold,
      {
        min: 0,
        max: 1,
        minExclusive: true,
      },
    );
  }

  private blockOptions(ratio: number): GmmlBlockOptions {
    return { ratio, align: this.align, maxBlockFraction: this.maxBlockFraction };
  }

  private geometry(height: number, width: number): GmmlGeometry {
    const g = this.geometryCache;
    if (g && g.height === height && g.width === width) return g;
    const geometry = gmmlGeometry(height, width, this.blockOptions(this.ratio));
    checkReachable(geometry, this.ratio, "ratio", this.ratio);
    if (this.replaceProb > 0)
      checkReachable(geometry, this.replaceRatio, "replaceRatio", this.replaceRatio);
    this.geometryCache = geometry;
    return geometry;
  }

  /**
   * Corrupt a batch of NHWC images (normalised), drawing every random number from `rng`. `out` may
   * hand in the arrays of an earlier result to be overwritten (see {@link MaskingBuffers}).
   */
  apply(images: ImageInput, rng: Rng, out?: MaskingBuffers): GmmlMaskingResult {
    const clean = readImageBatch("images", images);
    if (rng === null || typeof rng !== "object" || typeof (rng as Rng).int !== "function")
      throw invalidArgument("rng", rng, "an Rng from @sit/core");
    const [B, H, W, C] = clean.shape;
    const geometry = this.geometry(H, W);
    const replacing = this.replaceProb > 0;
    if (replacing && this.excludeSelf && B < 2)
      throw new ConfigError(
        `images: a replacement with excludeSelf needs at least 2 images to take a partner from, got a batch of ${B} ` +
          `(set excludeSelf: false or replaceProb: 0)`,
      );
    const { corrupted, pixelMask } = outputArrays(out, clean.data, B * H * W);
    // Fill a preallocated array: `new Float32Array(source)` is many times slower than `set`.
    corrupted.set(clean.data);
    const records: GmmlImageRecord[] = [];
    const imageSize = H * W * C;
    for (let i = 0; i < B; i++) {
      const view: ImageView = {
        data: corrupted,
        offset: i * imageSize,
        height: H,
        width: W,
        channels: C,
      };
      const mask = pixelMask.subarray(i * H * W, (i + 1) * H * W);
      if (replacing) {
        // The reference draws the partner for every image, then the coin.
        const partner = this.excludeSelf ? drawOther(rng, B, i) : rng.int(0, B);
        if (rng.bernoulli(this.replaceProb)) {
          const draw = drawGmmlBlocks(rng, geometry, this.replaceRatio, mask);
          copyMaskedFrom(view, clean.data, partner * imageSize, mask, 0);
          records.push({ kind: "replacement", partner, ...draw });
          continue;
        }
      }
      const fill = this.fills.length === 1 ? this.fills[0] : rng.choice(this.fills);
      const onBlock =
        fill === "shuffle"
          ? (block: GmmlBlock) => shuffleBlock(view, geometry, block, rng)
          : undefined;
      const draw = drawGmmlBlocks(rng, geometry, this.ratio, mask, onBlock);
      if (fill === "zeros") fillMaskedConstant(view, mask, 0, 0);
      else if (fill === "noise") fillMaskedNoise(view, mask, 0, new NormalStream(rng));
      records.push({ kind: "blocks", fill, ...draw });
    }
    const result: GmmlMaskingResult = {
      corrupted: { data: corrupted, shape: [B, H, W, C] },
      pixelMask: { data: pixelMask, shape: [B, H, W] },
      images: records,
    };
    if (this.patchSize !== undefined)
      result.tokenMask = pixelToTokenMask(result.pixelMask, this.patchSize, {
        threshold: this.tokenThreshold,
      });
    return result;
  }

  /**
   * Draw the corruption of a batch of `shape` = [B, H, W, C] without reading the images: the same
   * draws from `rng`, in the same order, as {@link GmmlMasker.apply}, returned as a
   * {@link CorruptionPlan} (per-pixel sources, noise values, masks). Applying the plan to the
   * images gives exactly `apply`'s corrupted images; it lets a GPU backend corrupt a batch where it
   * lives (see `corruptViews`) instead of reading it back to the host.
   */
  plan(shape: readonly [number, number, number, number], rng: Rng): GmmlCorruptionPlan {
    return this.planViews(shape, 1, rng);
  }

  /**
   * The plans of `views` batches of `shape` drawn in turn from `rng` (exactly `views` calls of
   * {@link GmmlMasker.plan}), as one plan over the stacked batch `[views·B, H, W, C]`
   * (view-major): view v's pixel sources are moved by v·B·H·W and its noise slots follow the
   * earlier views'. `images` holds the views' records in turn, each `partner` counted within its
   * own view. Used by `corruptViewsStacked`, which would otherwise offset every source of the
   * per-view plans in a second pass.
   */
  planViews(
    shape: readonly [number, number, number, number],
    views: number,
    rng: Rng,
  ): GmmlCorruptionPlan {
    if (
      !Array.isArray(shape) ||
      shape.length !== 4 ||
      !shape.every((v) => Number.isInteger(v) && v > 0)
    )
      throw invalidArgument("shape", shape, "[B, H, W, C] of positive integers");
    checkNumber("views", views, { min: 1, integer: true });
    if (rng === null || typeof rng !== "object" || typeof (rng as Rng).int !== "function")
      throw invalidArgument("rng", rng, "an Rng from @sit/core");
    const [B, H, W, C] = shape;
    const geometry = this.geometry(H, W);
    const replacing = this.replaceProb > 0;
    if (replacing && this.excludeSelf && B < 2)
      throw new ConfigError(
        `shape: a replacement with excludeSelf needs at least 2 images to take a partner from, got a batch of ${B} ` +
          `(set excludeSelf: false or replaceProb: 0)`,
      );
    const HW = H * W;
    const source = new Int32Array(views * B * HW);
    const pixelMask = new Uint8Array(views * B * HW);
    // Noise values are drawn after all images: a noise image's stream is seeded from `rng` where
    // `apply` seeds it, then fills its slots once the total (the noise array's length) is known.
    const noiseDraws: { normals: NormalStream; firstSlot: number; count: number }[] = [];
    let slots = 0;
    const records: GmmlImageRecord[] = [];
    for (let image = 0; image < views * B; image++) {
      const i = image % B;
      const offset = image * HW;
      const mask = pixelMask.subarray(offset, offset + HW);
      if (replacing) {
        const partner = this.excludeSelf ? drawOther(rng, B, i) : rng.int(0, B);
        if (rng.bernoulli(this.replaceProb)) {
          const draw = drawGmmlBlocks(rng, geometry, this.replaceRatio, mask);
          writeImageSources(source, offset, mask, "partner", (image - i + partner) * HW);
          records.push({ kind: "replacement", partner, ...draw });
          continue;
        }
      }
      const fill = this.fills.length === 1 ? this.fills[0] : rng.choice(this.fills);
      let onBlock: ((block: GmmlBlock) => void) | undefined;
      if (fill === "shuffle") {
        // Shuffled blocks copy the image's sources as they are when drawn (earlier blocks included).
        writeIdentitySources(source, offset, HW);
        onBlock = (block) => shuffleSourceBlock(source, offset, H, W, geometry, block, rng);
      }
      const draw = drawGmmlBlocks(rng, geometry, this.ratio, mask, onBlock);
      if (fill === "zeros") writeImageSources(source, offset, mask, "zeros");
      else if (fill === "noise") {
        const normals = new NormalStream(rng);
        const count = writeImageSources(source, offset, mask, "noise", slots);
        noiseDraws.push({ normals, firstSlot: slots, count });
        slots += count;
      }
      records.push({ kind: "blocks", fill, ...draw });
    }
    // One stream call per image: the values `fillMaskedNoise` takes run by run, in the same order.
    const noise = new Float32Array(slots * C);
    for (const { normals, firstSlot, count } of noiseDraws)
      normals.fill(noise, firstSlot * C, (firstSlot + count) * C);
    const result: GmmlCorruptionPlan = {
      shape: [views * B, H, W, C],
      source,
      noise,
      pixelMask: { data: pixelMask, shape: [views * B, H, W] },
      images: records,
    };
    if (this.patchSize !== undefined)
      result.tokenMask = pixelToTokenMask(result.pixelMask, this.patchSize, {
        threshold: this.tokenThreshold,
      });
    return result;
  }

  /** The options as given (with defaults filled in), e.g. to log a run's configuration. */
  config(): Required<Omit<GmmlMaskerOptions, "patchSize" | "fill">> & {
    fill: GmmlFill[];
    patchSize?: number;
  } {
    return {
      ratio: this.ratio,
      fill: [...this.fills],
      align: this.align,
      maxBlockFraction: this.maxBlockFraction,
      replaceProb: this.replaceProb,
      replaceRatio: this.replaceRatio,
      excludeSelf: this.excludeSelf,
      tokenThreshold: this.tokenThreshold,
      ...(this.patchSize !== undefined ? { patchSize: this.patchSize } : {}),
    };
  }

  toString(): string {
    return `GmmlMasker(${describeValue(this.config())})`;
  }
}

/** A uniform index in [0, n) other than `self`. */
function drawOther(rng: Rng, n: number, self: number): number {
  const j = rng.int(0, n - 1);
  return j >= self ? j + 1 : j;
}
