import * as tf from "@tensorflow/tfjs";
import { type Scalars, VIEW_ALIGN, type View, encode, viewOf } from "./encode";
import { newTensorInfo, webgpuInternals } from "./flat-buffers";
import { contrastiveGradWgsl, contrastiveRowsWgsl, contrastiveSumWgsl } from "./contrastive-wgsl";
import { registerWebgpuKernels } from "./program";

// The MoCo-v3 loss (one pair, or SiT's two: CL(s₁, t₂) + CL(s₂, t₁)) as one tfjs kernel each way
// on webgpu: two dispatches forward (per-row cross-entropies, their sum), one backward. It plugs
// into @sit/losses through @sit/core's `registerContrastiveLossKernel` (flat-register.ts).

export const CONTRASTIVE_KERNEL = "SitContrastiveLoss";
/** One pair (tfjs's tape saves inputs by name, so a pair fewer is another kernel name). */
export const CONTRASTIVE_ONE_KERNEL = "SitContrastiveLossOne";
export const CONTRASTIVE_GRAD_KERNEL = "SitContrastiveLossGrad";

interface ContrastiveAttrs {
  temperature: number;
  eps: number;
  pairs: number;
}

type Args = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: ContrastiveAttrs };

function uniforms(q: tf.TensorInfo, attrs: ContrastiveAttrs, scale: number): Scalars[] {
  const [b, d] = q.shape;
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

/** The four query/key bindings; with one pair, the first pair's again (read-only: may alias). */
function pairViews(b: Internals, t: Record<string, tf.TensorInfo>): View[] {
  return [t.q1, t.q2 ?? t.q1, t.k1, t.k2 ?? t.k1].map((x) => viewOf(b, x));
}

function forward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const batch = inputs.q1.shape[0];
  const rows = newTensorInfo(b, [batch * attrs.pairs]);
  const loss = newTensorInfo(b, []);
  const u = uniforms(inputs.q1, attrs, (2 * attrs.temperature) / batch);
  const qk = pairViews(b, inputs);
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
  const [batch, d] = inputs.q1.shape;
  const dq = Array.from({ length: attrs.pairs }, () => newTensorInfo(b, [batch, d]));
  const u = uniforms(inputs.q1, attrs, 2 / batch);
  // With one pair, the unused second gradient binding is a range of the scratch past its rows
  // (writable bindings must not overlap).
  const rows = batch * attrs.pairs * batch;
  const scratch = newTensorInfo(b, [rows + (attrs.pairs === 1 ? VIEW_ALIGN * 2 : 0)]);
  const spareAt = Math.ceil(rows / VIEW_ALIGN) * VIEW_ALIGN;
  const views = [...pairViews(b, inputs), viewOf(b, inputs.dy), viewOf(b, scratch, 0, rows)];
  views.push(viewOf(b, dq[0]), dq[1] ? viewOf(b, dq[1]) : viewOf(b, scratch, spareAt, 1));
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
  tf.registerGradient({
    kernelName: CONTRASTIVE_KERNEL,
    inputsToSave: ["q1", "k1", "q2", "k2"],
    gradFunc,
  });
  tf.registerGradient({ kernelName: CONTRASTIVE_ONE_KERNEL, inputsToSave: ["q1", "k1"], gradFunc });
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
  return tf.engine().runKernel(kernel, inputs, attrs as never) as tf.Scalar;
}
