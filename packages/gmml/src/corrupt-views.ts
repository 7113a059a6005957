import * as tf from "@tensorflow/tfjs";
import {
  type Rng,
  ShapeError,
  invalidArgument,
  isHostBackend,
  pixelSourcesKernel,
} from "@sit/core";
import { GmmlMasker } from "./gmml-masker";
import { type MaskingStrategy, maskingResultToTensors } from "./strategy";

// Corrupting tensors with a masking strategy. Masks are always drawn on the CPU from the explicit
// Rng (same seed → same masks on every backend); only where the drawn corruption is applied
// depends on the backend.

/** One gather from a table of [clean pixels; a zero pixel; the noise pixels]. */
function portablePixelSources(
  images: tf.Tensor4D,
  source: Int32Array,
  noise: Float32Array,
): tf.Tensor4D {
  const [B, H, W, C] = images.shape;
  const pixels = B * H * W;
  const index = new Int32Array(pixels);
  for (let p = 0; p < pixels; p++) {
    const s = source[p];
    index[p] = s >= 0 ? s : s === -1 ? pixels : pixels + 1 + (-2 - s);
  }
  return tf.tidy(() => {
    const table = tf.concat([
      images.reshape([pixels, C]),
      tf.zeros([1, C]),
      tf.tensor2d(noise, [noise.length / C, C]),
    ]);
    return tf.gather(table, tf.tensor1d(index, "int32")).reshape([B, H, W, C]) as tf.Tensor4D;
  });
}

/**
 * Build a corrupted batch from `images` `[B, H, W, C]` and a per-pixel source map (a
 * `CorruptionPlan`): output pixel p (flat `b·H·W + y·W + x`) takes all channels from clean
 * pixel `source[p]` when it is ≥ 0, zeros when it is −1, and noise values `noise[k·C … k·C + C)`
 * when it is `−2 − k`. Where a backend package registered a kernel for the active backend
 * (@sit/core's `registerPixelSourcesKernel`; @sit/kernels does for webgpu: one dispatch) that
 * one; elsewhere one gather. Pure copies: the result is exact on every backend. Returns a new tensor.
 */
export function applyPixelSources(
  images: tf.Tensor4D,
  source: Int32Array,
  noise: Float32Array,
): tf.Tensor4D {
  if (!(images instanceof tf.Tensor) || images.rank !== 4 || images.dtype !== "float32")
    throw invalidArgument("images", images, "a float32 NHWC tensor [B, H, W, C]");
  const [B, H, W, C] = images.shape;
  if (!(source instanceof Int32Array) || source.length !== B * H * W)
    throw new ShapeError(
      `source: expected an Int32Array of ${B * H * W} values (one per pixel of [${images.shape.join(", ")}]), got ${source instanceof Int32Array ? source.length : typeof source}`,
    );
  if (!(noise instanceof Float32Array) || noise.length % C !== 0)
    throw invalidArgument("noise", noise, `a Float32Array whose length is a multiple of ${C}`);
  const slots = noise.length / C;
  for (let p = 0; p < source.length; p++) {
    const s = source[p];
    if (s >= B * H * W || s < -1 - slots)
      throw invalidArgument(
        `source[${p}]`,
        s,
        `a pixel in [0, ${B * H * W}), -1, or a noise slot down to ${-1 - slots}`,
      );
  }
  return applyPlanSources(images, source, noise);
}

/**
 * {@link applyPixelSources} without its checks, for plans this package's own strategies build
 * (valid by construction): the check reads every source again, 6.4M of them for two views of
 * 64×224×224, on the host path of every training step. Other strategies' plans are checked.
 */
function applyPlanSources(
  images: tf.Tensor4D,
  source: Int32Array,
  noise: Float32Array,
): tf.Tensor4D {
  const kernel = pixelSourcesKernel(tf.getBackend());
  return kernel ? kernel(images, source, noise) : portablePixelSources(images, source, noise);
}

/** Whether `strategy`'s plans are this package's own: a GmmlMasker whose `plan` no subclass replaced. */
function ownPlans(strategy: MaskingStrategy): strategy is GmmlMasker {
  return strategy instanceof GmmlMasker && strategy.plan === GmmlMasker.prototype.plan;
}

/** How to apply `strategy`'s plans: unchecked when this package built them. */
function applyTo(strategy: MaskingStrategy): typeof applyPixelSources {
  return ownPlans(strategy) ? applyPlanSources : applyPixelSources;
}

/**
 * Corrupt each view with the strategy; returns corrupted views, `[B, H, W, 1]` pixel masks and,
 * when the strategy knows a patch size, `[B, N]` token masks (the caller disposes all of them).
 * Masks are always drawn on the CPU from `rng`. On device backends (webgpu, …), a strategy with
 * a `plan` (GMML) is applied where the views live — one dispatch per view on webgpu, through
 * {@link applyPixelSources} — instead of reading the views back; the numbers are the same.
 */
export function corruptViews(
  strategy: MaskingStrategy,
  views: tf.Tensor4D[],
  rng: Rng,
): { corrupted: tf.Tensor4D[]; masks: tf.Tensor4D[]; tokenMasks: tf.Tensor2D[] } {
  const corrupted: tf.Tensor4D[] = [];
  const masks: tf.Tensor4D[] = [];
  const tokenMasks: tf.Tensor2D[] = [];
  const onDevice = !isHostBackend() && typeof strategy.plan === "function";
  for (const v of views) {
    if (onDevice && strategy.plan) {
      if (!(v instanceof tf.Tensor) || v.rank !== 4 || v.dtype !== "float32")
        throw new ShapeError(
          `views: expected float32 NHWC tensors [B, H, W, C], got ${v instanceof tf.Tensor ? `${v.dtype} [${v.shape}]` : String(v)}`,
        );
      const [B, H, W] = v.shape;
      const plan = strategy.plan(v.shape, rng);
      corrupted.push(applyTo(strategy)(v, plan.source, plan.noise));
      masks.push(tf.tensor4d(new Float32Array(plan.pixelMask.data), [B, H, W, 1], "float32"));
      if (plan.tokenMask)
        tokenMasks.push(
          tf.tensor2d(new Float32Array(plan.tokenMask.mask), plan.tokenMask.shape, "float32"),
        );
      continue;
    }
    // Masks are drawn on the CPU from the explicit Rng (same seed → same masks on every backend).
    const result = strategy.apply(
      { data: v.dataSync() as Float32Array, shape: v.shape as [number, number, number, number] },
      rng,
    );
    const t = maskingResultToTensors(result);
    corrupted.push(t.corrupted);
    masks.push(t.pixelMask);
    if (t.tokenMask) tokenMasks.push(t.tokenMask);
  }
  return { corrupted, masks, tokenMasks };
}

/**
 * {@link corruptViews} with the views stacked as one batch `[V·B, H, W, C]` (view-major): returns
 * the stacked clean views, the stacked corrupted views and pixel masks `[V·B, H, W, 1]`, and the
 * per-view `[B, N]` token masks (the caller disposes all of them). The same draws from `rng` in
 * the same order, so the numbers are `corruptViews`'s, concatenated. On device backends the
 * views' plans are drawn as one plan over the stacked batch (`planStackedViews` below): two
 * kernel calls in all (the clean views' concat and one pixel-sources dispatch) where
 * corruptViews and three concats made five.
 */
export function corruptViewsStacked(
  strategy: MaskingStrategy,
  views: tf.Tensor4D[],
  rng: Rng,
): { clean: tf.Tensor4D; corrupted: tf.Tensor4D; masks: tf.Tensor4D; tokenMasks: tf.Tensor2D[] } {
  if (!Array.isArray(views) || views.length === 0)
    throw invalidArgument("views", views, "a non-empty array of [B, H, W, C] tensors");
  if (isHostBackend() || typeof strategy.plan !== "function") {
    const out = corruptViews(strategy, views, rng);
    const stacked = tf.tidy(() => ({
      clean: tf.concat(views, 0) as tf.Tensor4D,
      corrupted: tf.concat(out.corrupted, 0) as tf.Tensor4D,
      masks: tf.concat(out.masks, 0) as tf.Tensor4D,
    }));
    tf.dispose([...out.corrupted, ...out.masks]);
    return { ...stacked, tokenMasks: out.tokenMasks };
  }
  const shape = views[0].shape;
  for (const [i, v] of views.entries())
    if (!(v instanceof tf.Tensor) || v.dtype !== "float32" || !tf.util.arraysEqual(v.shape, shape))
      throw new ShapeError(
        `views[${i}]: expected a float32 tensor [${shape.join(", ")}] like views[0], got ${v instanceof tf.Tensor ? `${v.dtype} [${v.shape}]` : String(v)}`,
      );
  const [B, H, W] = shape;
  const plan = planStackedViews(
    strategy,
    shape as [number, number, number, number],
    views.length,
    rng,
  );
  const clean = tf.concat(views, 0) as tf.Tensor4D;
  const tokenMasks = plan.tokenMasks.map((m) => tf.tensor2d(m, [B, m.length / B], "float32"));
  return {
    clean,
    corrupted: applyTo(strategy)(clean, plan.source, plan.noise),
    masks: tf.tensor4d(plan.masks, [views.length * B, H, W, 1], "float32"),
    tokenMasks,
  };
}

/** The host side of {@link corruptViewsStacked}: one plan over the stacked views, float masks. */
export interface StackedViewsPlan {
  /** Per-pixel sources over the stacked batch `[V·B, H, W]` (see `CorruptionPlan`). */
  source: Int32Array;
  noise: Float32Array;
  /** `[V·B·H·W]` float 0/1 pixel masks, view-major. */
  masks: Float32Array;
  /** Per view, the `[B·N]` float 0/1 token mask (none when the strategy knows no patch size). */
  tokenMasks: Float32Array[];
}

/**
 * Draw `views` plans of `shape` from `rng`, in turn, as one plan over the stacked batch: view v's
 * pixel sources move by v·B·H·W pixels and its noise slots by the earlier views' slots. A
 * {@link GmmlMasker} writes them in place (`planViews`: no second pass over 6.4M sources for two
 * views of 64×224×224); any other strategy's per-view plans are offset here. Either way the
 * numbers are those of `views` calls of `strategy.plan`.
 */
export function planStackedViews(
  strategy: MaskingStrategy,
  shape: readonly [number, number, number, number],
  views: number,
  rng: Rng,
): StackedViewsPlan {
  const [B, H, W, C] = shape;
  const pixels = B * H * W;
  if (ownPlans(strategy)) {
    const plan = strategy.planViews(shape, views, rng);
    const tokens = plan.tokenMask?.mask;
    const N = plan.tokenMask ? plan.tokenMask.shape[1] : 0;
    return {
      source: plan.source,
      noise: plan.noise,
      // One conversion each; `Float32Array.from` goes through the iterator protocol (slower).
      masks: new Float32Array(plan.pixelMask.data),
      tokenMasks: tokens
        ? Array.from(
            { length: views },
            (_, v) => new Float32Array(tokens.subarray(v * B * N, (v + 1) * B * N)),
          )
        : [],
    };
  }
  const plans = Array.from({ length: views }, () => strategy.plan!(shape, rng));
  const source = new Int32Array(views * pixels);
  const noise = new Float32Array(plans.reduce((n, p) => n + p.noise.length, 0));
  const masks = new Float32Array(views * pixels);
  let slots = 0;
  for (const [i, plan] of plans.entries()) {
    for (let p = 0; p < pixels; p++) {
      const s = plan.source[p];
      source[i * pixels + p] = s >= 0 ? s + i * pixels : s === -1 ? -1 : s - slots;
    }
    noise.set(plan.noise, slots * C);
    slots += plan.noise.length / C;
    masks.set(plan.pixelMask.data, i * pixels);
  }
  const tokenMasks = plans.flatMap((p) =>
    p.tokenMask ? [new Float32Array(p.tokenMask.mask)] : [],
  );
  return { source, noise, masks, tokenMasks };
}
