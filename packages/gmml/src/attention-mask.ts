import * as tf from "@tensorflow/tfjs";
import { type Rng, ShapeError, checkNumber, invalidArgument } from "@sit/core";
import { fillMaskedConstant } from "./fills";
import { type ImageInput, type MaskingBuffers, outputArrays, readImageBatch } from "./images";
import type { MaskingResult, MaskingStrategy, MaskingTensors } from "./strategy";
import { corruptByTokens } from "./token-corruption";
import { patchGrid, pixelToTokenMask } from "./token-mask";

// Attention-guided masking (AttMask: Kakogeorgiou et al., "What to Hide from Your Students:
// Attention-Guided Masked Image Modeling", ECCV 2022): the teacher's last-block attention from the
// CLS token, averaged over heads, ranks the patches; the most attended are masked ("high"), or
// masked with a few of the most attended revealed again as hints ("hint").

/** AttMask's defaults: mask half the tokens (GMML's ratio); hints: reveal 10 % of N from the top 10 %. */
export const ATTENTION_MASK_DEFAULTS = {
  mode: "high",
  ratio: 0.5,
  showMax: 0.1,
  showRatio: 0.1,
  groups: "token",
} as const;

/** Options of {@link AttentionMasker} ({@link ATTENTION_MASK_DEFAULTS}). */
export interface AttentionMaskerOptions {
  /** "high": mask the most attended patches; "hint": the same, then reveal a few of the top ones. */
  mode?: "high" | "hint";
  /** Share of the N tokens chosen: floor(N·ratio), in (0, 1]. */
  ratio?: number;
  /** Hints: reveal floor(N·showRatio) tokens drawn uniformly among the floor(N·showMax) most attended. */
  showMax?: number;
  showRatio?: number;
  /**
   * "token": the chosen patches are masked exactly (token-aligned, computed on the device on
   * device backends). "pixel": GMML-style pixel groups — each chosen patch's cell is shifted by a
   * random offset of up to half a patch in each direction, so the masked regions follow the
   * attended parts of the image without the patch grid's edges (drawn on the CPU).
   */
  groups?: "token" | "pixel";
  /** Patch side in pixels (the ViT's). Masked pixels are set to 0 (GMML's "zeros" fill). */
  patchSize: number;
}

/** The CLS token's attention to each patch, averaged over heads: `[B, H, 1+N, 1+N]` → `[B, N]`. */
export function clsAttentionScores(attention: tf.Tensor): tf.Tensor2D {
  if (!(attention instanceof tf.Tensor) || attention.rank !== 4)
    throw invalidArgument("attention", attention, "attention probabilities [B, heads, 1+N, 1+N]");
  const [B, , T] = attention.shape;
  return tf.tidy(
    () =>
      tf.reshape(tf.mean(tf.slice(attention, [0, 0, 0, 1], [-1, -1, 1, T - 1]), 1), [
        B,
        T - 1,
      ]) as tf.Tensor2D,
  );
}

/** Patch order by descending score (ties: lower index first, as a stable sort). */
function rankDescending(scores: ArrayLike<number>, offset: number, n: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => scores[offset + b] - scores[offset + a] || a - b);
  return order;
}

/** Masking by attention scores behind {@link MaskingStrategy} (see {@link AttentionMasker.forScores}). */
export class AttentionMasker {
  readonly mode: "high" | "hint";
  readonly ratio: number;
  readonly showMax: number;
  readonly showRatio: number;
  readonly groups: "token" | "pixel";
  readonly patchSize: number;

  constructor(options: AttentionMaskerOptions) {
    const o = { ...ATTENTION_MASK_DEFAULTS, ...options };
    if (o.mode !== "high" && o.mode !== "hint")
      throw invalidArgument("mode", o.mode, '"high" or "hint"');
    if (o.groups !== "token" && o.groups !== "pixel")
      throw invalidArgument("groups", o.groups, '"token" or "pixel"');
    this.mode = o.mode;
    this.groups = o.groups;
    const frac = { min: 0, max: 1, minExclusive: true };
    this.ratio = checkNumber("ratio", o.ratio, frac);
    this.showMax = checkNumber("showMax", o.showMax, frac);
    this.showRatio = checkNumber("showRatio", o.showRatio, { min: 0, max: 1 });
    this.patchSize = checkNumber("patchSize", o.patchSize, { min: 1, integer: true });
  }

  /** Tokens chosen (masked before hints) and revealed again among the top ones, for N tokens. */
  counts(numTokens: number): { chosen: number; top: number; reveal: number } {
    const chosen = Math.max(1, Math.floor(numTokens * this.ratio));
    if (this.mode === "high") return { chosen, top: 0, reveal: 0 };
    const top = Math.min(chosen, Math.max(1, Math.floor(numTokens * this.showMax)));
    return { chosen, top, reveal: Math.min(top, Math.floor(numTokens * this.showRatio)) };
  }

  /**
   * Per image, which ranks are masked: 1 for the `chosen` most attended ranks except the hints
   * (random ranks among the top ones). The draws do not depend on the scores, so host and device
   * paths draw the same hints from the same `rng`.
   */
  drawRanks(batch: number, numTokens: number, rng: Rng): Uint8Array {
    const { chosen, top, reveal } = this.counts(numTokens);
    const keep = new Uint8Array(batch * chosen).fill(1);
    for (let b = 0; b < batch; b++) {
      if (reveal === 0) continue;
      const order = rng.permutation(top);
      for (let i = 0; i < reveal; i++) keep[b * chosen + order[i]] = 0;
    }
    return keep;
  }

  /** Token masks `[B·N]` (1 = masked) from scores `[B, N]` on the host. */
  tokenMask(scores: ArrayLike<number>, shape: [number, number], rng: Rng): Uint8Array {
    const [B, N] = shape;
    if (scores.length !== B * N)
      throw new ShapeError(`scores: expected ${B}×${N} values, got ${scores.length}`);
    const keep = this.drawRanks(B, N, rng);
    const chosen = keep.length / B;
    const mask = new Uint8Array(B * N);
    for (let b = 0; b < B; b++) {
      const order = rankDescending(scores, b * N, N);
      for (let r = 0; r < chosen; r++) if (keep[b * chosen + r]) mask[b * N + order[r]] = 1;
    }
    return mask;
  }

  /** A {@link MaskingStrategy} that masks images by these scores `[B, N]` (host path). */
  forScores(scores: ArrayLike<number>, shape: [number, number]): MaskingStrategy {
    return { apply: (images, rng, out) => this.applyScores(images, scores, shape, rng, out) };
  }

  private applyScores(
    images: ImageInput,
    scores: ArrayLike<number>,
    shape: [number, number],
    rng: Rng,
    out?: MaskingBuffers,
  ): MaskingResult {
    const clean = readImageBatch("images", images);
    const [B, H, W, C] = clean.shape;
    const grid = patchGrid(H, W, this.patchSize);
    if (shape[0] !== B || shape[1] !== grid[0] * grid[1])
      throw new ShapeError(
        `scores: expected [${B}, ${grid[0] * grid[1]}] (one per patch of [${clean.shape}]), got [${shape}]`,
      );
    const tokens = this.tokenMask(scores, shape, rng);
    const N = shape[1];
    if (this.groups === "token") {
      let b = 0;
      return corruptByTokens(clean, rng, this.patchSize, "zeros", () =>
        tokens.subarray(N * b, N * ++b),
      );
    }
    const buffers = outputArrays(out, clean.data, B * H * W);
    const m = buffers.pixelMask;
    const p = this.patchSize;
    const half = Math.floor(p / 2);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < N; t++) {
        if (!tokens[b * N + t]) continue;
        const y0 = Math.min(
          H - p,
          Math.max(0, Math.floor(t / grid[1]) * p + rng.int(-half, half + 1)),
        );
        const x0 = Math.min(W - p, Math.max(0, (t % grid[1]) * p + rng.int(-half, half + 1)));
        for (let y = y0; y < y0 + p; y++) m.fill(1, (b * H + y) * W + x0, (b * H + y) * W + x0 + p);
      }
    const corrupted = buffers.corrupted;
    corrupted.set(clean.data);
    for (let b = 0; b < B; b++) {
      const view = { data: corrupted, offset: b * H * W * C, height: H, width: W, channels: C };
      fillMaskedConstant(view, m, b * H * W, 0);
    }
    const pixelMask = { data: m, shape: [B, H, W] as [number, number, number] };
    return {
      corrupted: { data: corrupted, shape: [B, H, W, C] },
      pixelMask,
      tokenMask: pixelToTokenMask(pixelMask, p),
    };
  }

  /**
   * Mask `views` (each `[B, H, W, C]`) by their CLS-attention `scores` (each `[B, N]`, e.g. from
   * {@link clsAttentionScores}); returns what `corruptViews` returns (the caller disposes it).
   * Token-aligned masks on a device backend are ranked and drawn there (top-k, one-hot, upsampled):
   * nothing is read back, only the hint ranks are uploaded. Pixel groups read the scores back.
   */
  maskViews(
    views: tf.Tensor4D[],
    scores: tf.Tensor2D[],
    rng: Rng,
  ): { corrupted: tf.Tensor4D[]; masks: tf.Tensor4D[]; tokenMasks: tf.Tensor2D[] } {
    if (!Array.isArray(views) || !Array.isArray(scores) || views.length !== scores.length)
      throw invalidArgument("scores", scores, `one [B, N] tensor per view (${views?.length})`);
    const out = {
      corrupted: [] as tf.Tensor4D[],
      masks: [] as tf.Tensor4D[],
      tokenMasks: [] as tf.Tensor2D[],
    };
    views.forEach((v, i) => {
      const t =
        this.groups === "token"
          ? this.deviceMask(v, scores[i], rng)
          : this.hostMask(v, scores[i].dataSync(), scores[i].shape, rng);
      out.corrupted.push(t.corrupted);
      out.masks.push(t.pixelMask);
      out.tokenMasks.push(t.tokenMask!);
    });
    return out;
  }

  /**
   * {@link AttentionMasker.maskViews} for every backend: pixel groups read the scores and views
   * back asynchronously (WebGPU under Node has no synchronous read); token-aligned masks stay on
   * the device as in `maskViews`. Same draws, same masks.
   */
  async maskViewsAsync(
    views: tf.Tensor4D[],
    scores: tf.Tensor2D[],
    rng: Rng,
  ): Promise<{ corrupted: tf.Tensor4D[]; masks: tf.Tensor4D[]; tokenMasks: tf.Tensor2D[] }> {
    if (this.groups === "token") return this.maskViews(views, scores, rng);
    if (!Array.isArray(views) || !Array.isArray(scores) || views.length !== scores.length)
      throw invalidArgument("scores", scores, `one [B, N] tensor per view (${views?.length})`);
    const read = await Promise.all(
      views.map(async (v, i) => ({
        images: {
          data: (await v.data()) as Float32Array,
          shape: v.shape as [number, number, number, number],
        },
        scores: (await scores[i].data()) as Float32Array,
      })),
    );
    const out = {
      corrupted: [] as tf.Tensor4D[],
      masks: [] as tf.Tensor4D[],
      tokenMasks: [] as tf.Tensor2D[],
    };
    read.forEach((r, i) => {
      const t = this.hostMask(r.images, r.scores, scores[i].shape, rng);
      out.corrupted.push(t.corrupted);
      out.masks.push(t.pixelMask);
      out.tokenMasks.push(t.tokenMask!);
    });
    return out;
  }

  private hostMask(
    view: ImageInput,
    scores: ArrayLike<number>,
    shape: [number, number],
    rng: Rng,
  ): MaskingTensors {
    const [B, N] = shape;
    const r = this.forScores(scores, [B, N]).apply(view, rng);
    const [, H, W] = r.pixelMask.shape;
    return {
      corrupted: tf.tensor4d(r.corrupted.data, r.corrupted.shape),
      pixelMask: tf.tensor4d(Float32Array.from(r.pixelMask.data), [B, H, W, 1]),
      tokenMask: tf.tensor2d(Float32Array.from(r.tokenMask!.mask), [B, N]),
    };
  }

  private deviceMask(view: tf.Tensor4D, scores: tf.Tensor2D, rng: Rng): MaskingTensors {
    const [B, H, W] = view.shape;
    const [gh, gw] = patchGrid(H, W, this.patchSize);
    const N = gh * gw;
    if (scores.rank !== 2 || scores.shape[0] !== B || scores.shape[1] !== N)
      throw new ShapeError(`scores: expected [${B}, ${N}] (one per patch), got [${scores.shape}]`);
    const keep = this.drawRanks(B, N, rng);
    const chosen = keep.length / B;
    const p = this.patchSize;
    return tf.tidy(() => {
      const { indices } = tf.topk(scores, chosen, true);
      const ranks = tf.tensor3d(Float32Array.from(keep), [B, chosen, 1]);
      const tokenMask = tf.sum(
        tf.mul(tf.oneHot(indices, N, 1, 0, "float32"), ranks),
        1,
      ) as tf.Tensor2D;
      const cells = tf.reshape(tokenMask, [B, gh, 1, gw, 1, 1]);
      const pixelMask = tf.reshape(tf.mul(cells, tf.ones([1, 1, p, 1, p, 1])), [B, H, W, 1]);
      const corrupted = tf.mul(view, tf.sub(1, pixelMask)) as tf.Tensor4D;
      return { corrupted, pixelMask: pixelMask as tf.Tensor4D, tokenMask };
    });
  }
}
