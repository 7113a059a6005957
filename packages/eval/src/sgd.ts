import * as tf from "@tensorflow/tfjs";
import { checkNumber } from "@sit/core";

/**
 * SGD with momentum and (coupled) weight decay, PyTorch's `torch.optim.SGD` semantics (dampening
 * 0, no Nesterov): `g ← g + wd·p`, `buf ← μ·buf + g` (buf = g on the first step), `p ← p − lr·buf`.
 * The optimiser of DINO's linear evaluation. Small: meant for heads, not whole networks.
 */
export class SgdMomentum {
  private readonly buffers = new Map<tf.Variable, tf.Variable>();

  constructor(
    readonly params: tf.Variable[],
    readonly momentum = 0.9,
  ) {
    checkNumber("momentum", momentum, { min: 0, max: 1, maxExclusive: true });
  }

  /** One update from gradients matched to `params` by position. */
  step(grads: tf.Tensor[], lr: number, weightDecay = 0): void {
    tf.tidy(() => {
      this.params.forEach((p, i) => {
        let g = grads[i];
        // Decay only matrices, as the usual rule (biases and norms get none).
        if (weightDecay !== 0 && p.rank > 1) g = g.add(p.mul(weightDecay));
        let buf = this.buffers.get(p);
        if (!buf) {
          buf = tf.variable(g, false);
          this.buffers.set(p, buf);
        } else if (this.momentum > 0) {
          buf.assign(buf.mul(this.momentum).add(g));
        } else {
          buf.assign(g);
        }
        p.assign(p.sub(buf.mul(lr)));
      });
    });
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}
