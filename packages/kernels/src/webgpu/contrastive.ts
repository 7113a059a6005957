import * as tf from "@tensorflow/tfjs";
import { type Scalars, VIEW_ALIGN, type View, encode, viewOf } from "./encode";
import { newTensorInfo, webgpuInternals } from "./flat-buffers";
import { contrastiveGradWgsl, contrastiveRowsWgsl, contrastiveSumWgsl } from "./contrastive-wgsl";
import { registerWebgpuKernels } from "./program";
import { runKernelSaving } from "./tape";

// The MoCo-v3 loss (one pair, or SiT's two: CL(s₁, t₂) + CL(s₂, t₁)) as one tfjs kernel each way
// on webgpu: two dispatches forward (per-row cross-entropies, their sum), one backward. It plugs
// into @sit/losses through @sit/core's `registerContrastiveLossKernel` (flat-register.ts).

export const CONTRASTIVE_KERNEL = "SitContrastiveLoss";
/** One pair (tfjs's tape saves inputs by name, so a pair fewer is another kernel name). */
export const CONTRASTIVE_ONE_KERNEL = "SitContrastiveLossOne";
export const CONTRASTIVE_GRAD_KERNEL = "SitContrastiveLossGrad";
/**
 * SiT's two pairs from both views stacked (`s = [s₁; s₂]`, `t = [t₁; t₂]`, `[2B, D]`): the
 * kernels bind each view as a range of the stacked buffer, so nothing is sliced; the gradient is
 * one `[2B, D]` tensor.
 */
export const CONTRASTIVE_VIEWS_KERNEL = "SitContrastiveLossViews";

interface ContrastiveAttrs {
  temperature: number;
  eps: number;
  pairs: number;
  /** Inputs `s`, `t` `[2B, D]` (both views stacked) instead of `q1, k1(, q2, k2)` `[B, D]`. */
  stacked?: boolean;
}

type Args = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: ContrastiveAttrs };

function uniforms([b, d]: number[], attrs: ContrastiveAttrs, scale: number): Scalars[] {
  return [
    { i: b },
    { i: d },
    { i: b * attrs.pairs },
    { f: 1 / attrs.temperature },
    { f: attrs.eps * attrs.eps },
    { f: scale },
  ];
}

type Internals = ReturnType<typeof webgpuInternals>;

/** `[B, D]` of one query (stacked inputs: half of `s`'s rows). */
function pairShape(t: Record<string, tf.TensorInfo>, attrs: ContrastiveAttrs): [number, number] {
  if (!attrs.stacked) return [t.q1.shape[0], t.q1.shape[1]];
  return [t.s.shape[0] / 2, t.s.shape[1]];
}

/**
 * The four query/key bindings q₁, q₂, k₁, k₂; with one pair, the first pair's again (read-only:
 * may alias). Stacked: s₁, s₂ against t₂, t₁ as ranges of `s` and `t`.
 */
function pairViews(
  b: Internals,
  t: Record<string, tf.TensorInfo>,
  attrs: ContrastiveAttrs,
): View[] {
  if (attrs.stacked) {
    const [batch, d] = pairShape(t, attrs);
    const n = batch * d;
    return [viewOf(b, t.s, 0, n), viewOf(b, t.s, n, n), viewOf(b, t.t, n, n), viewOf(b, t.t, 0, n)];
  }
  return [t.q1, t.q2 ?? t.q1, t.k1, t.k2 ?? t.k1].map((x) => viewOf(b, x));
}

function forward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const shape = pairShape(inputs, attrs);
  const batch = shape[0];
  const rows = newTensorInfo(b, [batch * attrs.pairs]);
  const loss = newTensorInfo(b, []);
  const u = uniforms(shape, attrs, (2 * attrs.temperature) / batch);
  const qk = pairViews(b, inputs, attrs);
  encode(b, "SitContrastiveRows", contrastiveRowsWgsl, [...qk, viewOf(b, rows)], u, [
    batch * attrs.pairs,
    1,
    1,
  ]);
  encode(
    b,
    "SitContrastiveSum",
    contrastiveSumWgsl,
    [viewOf(b, rows), viewOf(b, loss)],
    u,
    [1, 1, 1],
  );
  b.disposeData(rows.dataId);
  return loss;
}

function backward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const [batch, d] = pairShape(inputs, attrs);
  const dq = attrs.stacked
    ? [newTensorInfo(b, [2 * batch, d])]
    : Array.from({ length: attrs.pairs }, () => newTensorInfo(b, [batch, d]));
  const u = uniforms([batch, d], attrs, 2 / batch);
  // With one pair, the unused second gradient binding is a range of the scratch past its rows
  // (writable bindings must not overlap).
  const rows = batch * attrs.pairs * batch;
  const scratch = newTensorInfo(b, [rows + (attrs.pairs === 1 ? VIEW_ALIGN * 2 : 0)]);
  const spareAt = Math.ceil(rows / VIEW_ALIGN) * VIEW_ALIGN;
  const views = [...pairViews(b, inputs, attrs), viewOf(b, inputs.dy), viewOf(b, scratch, 0, rows)];
  if (attrs.stacked)
    views.push(viewOf(b, dq[0], 0, batch * d), viewOf(b, dq[0], batch * d, batch * d));
  else views.push(viewOf(b, dq[0]), dq[1] ? viewOf(b, dq[1]) : viewOf(b, scratch, spareAt, 1));
  encode(b, "SitContrastiveGrad", contrastiveGradWgsl, views, u, [batch * attrs.pairs, 1, 1]);
  b.disposeData(scratch.dataId);
  return dq;
}

let registered = false;

/** Register the contrastive-loss kernels and the forward's gradient with tfjs (once). */
export function registerContrastiveKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [CONTRASTIVE_KERNEL, forward],
    [CONTRASTIVE_ONE_KERNEL, forward],
    [CONTRASTIVE_VIEWS_KERNEL, forward],
    [CONTRASTIVE_GRAD_KERNEL, backward],
  ]);
  const gradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: unknown) => {
    const [q1, k1, q2, k2] = saved;
    const inputs: Record<string, tf.Tensor> = { dy: dy as tf.Tensor, q1, k1 };
    if (q2) Object.assign(inputs, { q2, k2 });
    const [dq1, dq2] = tf
      .engine()
      .runKernel(CONTRASTIVE_GRAD_KERNEL, inputs, attrs as never) as tf.Tensor[];
    // The keys are the teacher's: detached, as in the portable loss.
    return {
      q1: () => dq1,
      k1: () => tf.zerosLike(k1),
      ...(q2 ? { q2: () => dq2, k2: () => tf.zerosLike(k2) } : {}),
    };
  };
  // The inputs are saved by the functions below without tape copies (tape.ts).
  tf.registerGradient({ kernelName: CONTRASTIVE_KERNEL, gradFunc });
  tf.registerGradient({ kernelName: CONTRASTIVE_ONE_KERNEL, gradFunc });
  tf.registerGradient({
    kernelName: CONTRASTIVE_VIEWS_KERNEL,
    gradFunc: (dy, [s, t], attrs) => {
      const inputs = { dy: dy as tf.Tensor, s, t };
      const [ds] = tf
        .engine()
        .runKernel(CONTRASTIVE_GRAD_KERNEL, inputs, attrs as never) as tf.Tensor[];
      return { s: () => ds, t: () => tf.zerosLike(t) };
    },
  });
}

/**
 * Σ over `pairs` (one or two) of the MoCo-v3 loss of `q` against `k` (both `[B, D]`, float32,
 * checked by the caller) on webgpu: one tfjs kernel of two dispatches forward, one of one
 * dispatch backward. The core seam's `ContrastiveLossKernel`.
 */
export function webgpuContrastiveLoss(
  pairs: [tf.Tensor2D, tf.Tensor2D][],
  temperature: number,
  eps: number,
): tf.Scalar {
  if (pairs.length !== 1 && pairs.length !== 2)
    throw new Error(`webgpuContrastiveLoss pairs: expected one or two, got ${pairs.length}`);
  registerContrastiveKernels();
  const inputs: Record<string, tf.Tensor> = { q1: pairs[0][0], k1: pairs[0][1] };
  if (pairs[1]) Object.assign(inputs, { q2: pairs[1][0], k2: pairs[1][1] });
  const attrs: ContrastiveAttrs = { temperature, eps, pairs: pairs.length };
  const kernel = pairs.length === 2 ? CONTRASTIVE_KERNEL : CONTRASTIVE_ONE_KERNEL;
  // Saved in the gradient's order: q1, k1(, q2, k2).
  const saved = pairs.flat();
  return runKernelSaving(kernel, inputs, attrs, () => saved)[0] as tf.Scalar;
}

/**
 * SiT's `CL(s₁, t₂) + CL(s₂, t₁)` of both views stacked, `s`, `t` `[2B, D]` (float32, checked by
 * the caller), on webgpu: each view bound as a range of the stacked buffers (one kernel of two
 * dispatches forward, one of one dispatch backward, no slices). Where a view's range would not
 * start on a storage-binding boundary (B·D not a multiple of {@link VIEW_ALIGN}) the views are cut
 * apart for {@link webgpuContrastiveLoss}. The core seam's `ContrastiveLossKernel.crossViews`.
 */
export function webgpuContrastiveLossOfViews(
  s: tf.Tensor2D,
  t: tf.Tensor2D,
  temperature: number,
  eps: number,
): tf.Scalar {
  const [rows, d] = s.shape;
  const batch = rows / 2;
  if ((batch * d) % VIEW_ALIGN !== 0)
    return tf.tidy(() => {
      const half = (x: tf.Tensor2D, i: number) => tf.slice(x, [i * batch, 0], [batch, -1]);
      return webgpuContrastiveLoss(
        [
          [half(s, 0), half(t, 1)],
          [half(s, 1), half(t, 0)],
        ],
        temperature,
        eps,
      );
    });
  registerContrastiveKernels();
  const attrs: ContrastiveAttrs = { temperature, eps, pairs: 2, stacked: true };
  return runKernelSaving(CONTRASTIVE_VIEWS_KERNEL, { s, t }, attrs, () => [s, t])[0] as tf.Scalar;
}
