import * as tf from "@tensorflow/tfjs";
import { type FlatGroup, type StepHyper, flatCopyIsCurrent, recordAssigned } from "./flat-group";

// The AdamW step as tfjs kernels on flat buffers, for backends whose tensors live on a device
// (webgpu, webgl, tensorflow): per group, one concat of the gradients, a fixed chain of
// element-wise kernels on the flat buffer, one split back; per-tensor norms take one `sum` per
// run of equal-sized tensors. The number of launches grows by two per non-vector parameter
// (reshape in, reshape out) rather than by a dozen.

type Device = NonNullable<FlatGroup["device"]>;

function currentParams(g: FlatGroup, d: Device): tf.Tensor1D {
  if (!flatCopyIsCurrent(g)) d.params.assign(g.layout.flatten(g.vars));
  return d.params as unknown as tf.Tensor1D;
}

/** One AdamW step of every group with tfjs kernels. Call inside `tf.tidy`. */
export function deviceStep(groups: FlatGroup[], grads: tf.Tensor[][], h: StepHyper): void {
  const active = groups.map((g, gi) => ({ g, gi })).filter(({ g }) => g.layout.total > 0);
  let flats = active.map(({ g, gi }) => g.layout.flatten(grads[gi]));
  const squares: tf.Tensor[] = [];
  if (h.clipPerTensor !== null) {
    const c = h.clipPerTensor;
    flats = flats.map((flat, i) => {
      const { g } = active[i];
      const d = g.device as Device;
      if (!d.segmentIds) d.segmentIds = tf.keep(g.layout.segmentIds());
      const sums = g.layout.segmentSums(tf.square(flat));
      // SiT's clip_gradients: coef = c / (‖g‖ + 1e-6), applied when it is below 1.
      const scale = tf.minimum(tf.div(c, tf.sqrt(sums).add(1e-6)), 1);
      if (h.clipGlobalNorm !== null) {
        // A tensor whose norm overflowed float32 is zeroed (scale 0): keep ∞·0 out of the total.
        const clippedSq = tf.where(
          tf.equal(scale, 0),
          tf.zerosLike(sums),
          sums.mul(tf.square(scale)),
        );
        squares.push(tf.sum(clippedSq));
      }
      return flat.mul(tf.gather(scale, d.segmentIds));
    });
  } else if (h.clipGlobalNorm !== null) {
    for (const flat of flats) squares.push(tf.sum(tf.square(flat)));
  }
  if (h.clipGlobalNorm !== null && squares.length > 0) {
    const total = tf.sqrt(squares.length === 1 ? squares[0] : tf.addN(squares));
    const coef = tf.minimum(tf.div(h.clipGlobalNorm, total.add(1e-6)), 1);
    flats = flats.map((f) => f.mul(coef));
  }
  for (const [i, { g }] of active.entries()) updateGroup(g, flats[i], h);
}

function updateGroup(g: FlatGroup, grad: tf.Tensor1D, h: StepHyper): void {
  const { beta1: b1, beta2: b2, eps, step: t } = h;
  const d = g.device as Device;
  let p: tf.Tensor = currentParams(g, d);
  if (g.weightDecay !== 0 && g.lr !== 0) p = p.mul(1 - g.lr * g.weightDecay);
  const m = d.m.mul(b1).add(grad.mul(1 - b1));
  const v = d.v.mul(b2).add(tf.square(grad).mul(1 - b2));
  const stepSize = g.lr / (1 - b1 ** t);
  const denom = tf
    .sqrt(v)
    .div(Math.sqrt(1 - b2 ** t))
    .add(eps);
  const pNew = p.sub(m.div(denom).mul(stepSize));
  d.m.assign(m);
  d.v.assign(v);
  d.params.assign(pNew);
  const parts = g.layout.unflatten(pNew);
  for (const [i, variable] of g.vars.entries()) variable.assign(parts[i]);
  recordAssigned(g);
}
