import * as tf from "@tensorflow/tfjs";
import { ConfigError, describeValue } from "@sit/core";

// Dynamic loss scaling for mixed precision, with the semantics of PyTorch's
// torch.cuda.amp.GradScaler: the loss is multiplied by the scale before the backward pass so that
// small gradients survive f16; the gradients are divided by it again (before clipping and the
// optimiser). A step whose gradients hold an inf or NaN (an f16 overflow) is skipped — no
// optimiser step, no EMA update — and the scale is multiplied by the backoff factor; after
// `growthInterval` consecutive clean steps it is multiplied by the growth factor (kept only if
// still finite in f32). The scale is an f32 value, as PyTorch's scale tensor is.

/** Options of {@link DynamicLossScaler}; the defaults are PyTorch's. */
export interface LossScalerOptions {
  /** Scale of the first step (2¹⁶). */
  initScale?: number;
  /** Factor after `growthInterval` clean steps (2; > 1). */
  growthFactor?: number;
  /** Factor after a step with an inf/NaN gradient (0.5; in (0, 1)). */
  backoffFactor?: number;
  /** Clean steps before the scale grows (2000; a positive integer). */
  growthInterval?: number;
}

/** PyTorch GradScaler's defaults. */
export const LOSS_SCALER_DEFAULTS: Readonly<Required<LossScalerOptions>> = Object.freeze({
  initScale: 2 ** 16,
  growthFactor: 2,
  backoffFactor: 0.5,
  growthInterval: 2000,
});

/** What a checkpoint keeps of a {@link DynamicLossScaler} (PyTorch's `state_dict` fields). */
export interface LossScalerState {
  scale: number;
  growthTracker: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
}

function checkOptions(o: Required<LossScalerOptions>): void {
  const bad = (name: string, value: unknown, expected: string) =>
    new ConfigError(`lossScaler ${name}: expected ${expected}, got ${describeValue(value)}`);
  if (!(typeof o.initScale === "number" && o.initScale > 0 && Number.isFinite(o.initScale)))
    throw bad("initScale", o.initScale, "a positive finite number");
  if (
    !(typeof o.growthFactor === "number" && o.growthFactor > 1 && Number.isFinite(o.growthFactor))
  )
    throw bad("growthFactor", o.growthFactor, "a finite number above 1");
  if (!(typeof o.backoffFactor === "number" && o.backoffFactor > 0 && o.backoffFactor < 1))
    throw bad("backoffFactor", o.backoffFactor, "a number between 0 and 1 (exclusive)");
  if (!(Number.isInteger(o.growthInterval) && o.growthInterval > 0))
    throw bad("growthInterval", o.growthInterval, "a positive integer");
}

/**
 * Gradients divided by the scale, and `check`: a scalar that is NaN when any scaled gradient held
 * an inf or NaN, else 0. (A type, not an interface: tf.tidy may return it.)
 */
export type ScaledGradients = {
  grads: Record<string, tf.Tensor>;
  check: tf.Scalar;
};

/** Dynamic loss scaling with PyTorch GradScaler's semantics (see the module comment). */
export class DynamicLossScaler {
  private options: Required<LossScalerOptions>;
  private current: number;
  private tracker = 0;

  constructor(options: LossScalerOptions = {}) {
    this.options = { ...LOSS_SCALER_DEFAULTS, ...options };
    checkOptions(this.options);
    this.current = Math.fround(this.options.initScale);
  }

  /** The current scale. */
  get scale(): number {
    return this.current;
  }

  /** Consecutive clean steps since the scale last changed. */
  get growthTracker(): number {
    return this.tracker;
  }

  /** `loss · scale` (a new tensor). */
  scaleLoss<T extends tf.Tensor>(loss: T): T {
    return tf.mul(loss, tf.scalar(this.current)) as T;
  }

  /**
   * The gradients divided by the scale (new tensors, same names), and a scalar that is NaN when
   * any scaled gradient holds an inf or NaN, else 0 (checked elementwise before the division, as
   * PyTorch does: `g·0` is NaN exactly where g is not finite).
   */
  unscale(grads: Record<string, tf.Tensor>): ScaledGradients {
    return tf.tidy(() => {
      // 1/scale in f64 then f32, as PyTorch's `scale.double().reciprocal().float()`.
      const inv = tf.scalar(Math.fround(1 / this.current));
      const entries = Object.entries(grads);
      const out: Record<string, tf.Tensor> = {};
      for (const [k, g] of entries) out[k] = tf.mul(g, inv);
      const probes = entries.map(([, g]) => tf.sum(tf.mul(g, 0)));
      // (stack, not addN: webgpu's addN binds every input at once, past the per-shader limit.)
      const check = (probes.length > 0 ? tf.sum(tf.stack(probes)) : tf.scalar(0)) as tf.Scalar;
      return { grads: out, check };
    });
  }

  /**
   * After a step: back off on an inf/NaN gradient, else count a clean step and grow the scale
   * every `growthInterval` of them (PyTorch's `_amp_update_scale_`).
   */
  update(foundInf: boolean): void {
    const o = this.options;
    if (foundInf) {
      this.current = Math.fround(this.current * o.backoffFactor);
      this.tracker = 0;
      return;
    }
    const successful = this.tracker + 1;
    if (successful === o.growthInterval) {
      const grown = Math.fround(this.current * o.growthFactor);
      if (Number.isFinite(grown)) this.current = grown;
      this.tracker = 0;
    } else this.tracker = successful;
  }

  /**
   * Unscale `grads`, read whether they are finite (one scalar read, as PyTorch's `step` reads
   * `found_inf`), call `apply` with the unscaled gradients only when they are, and update the
   * scale. Disposes what it made (not `grads`). Resolves to whether `apply` ran.
   */
  step(
    grads: Record<string, tf.Tensor>,
    apply: (unscaled: Record<string, tf.Tensor>) => void,
  ): Promise<boolean> {
    return this.finish(this.unscale(grads), apply);
  }

  /** {@link DynamicLossScaler.step} after {@link DynamicLossScaler.unscale}; disposes `unscaled`. */
  async finish(
    { grads: unscaled, check }: ScaledGradients,
    apply: (unscaled: Record<string, tf.Tensor>) => void,
  ): Promise<boolean> {
    try {
      const finite = Number.isFinite((await check.data())[0]);
      if (finite) apply(unscaled);
      this.update(!finite);
      return finite;
    } finally {
      tf.dispose([check, ...Object.values(unscaled)]);
    }
  }

  /** The state a checkpoint keeps. */
  state(): LossScalerState {
    return { scale: this.current, growthTracker: this.tracker, ...this.options };
  }

  /** Restore {@link DynamicLossScaler.state} (the factors and interval too). */
  loadState(state: LossScalerState): void {
    const o = { initScale: state?.scale, ...pickFactors(state) };
    checkOptions(o);
    if (!(Number.isInteger(state.growthTracker) && state.growthTracker >= 0))
      throw new ConfigError(
        `lossScaler growthTracker: expected a non-negative integer, got ${describeValue(state.growthTracker)}`,
      );
    this.options = { ...o, initScale: this.options.initScale };
    this.current = Math.fround(state.scale);
    this.tracker = state.growthTracker;
  }
}

function pickFactors(s: LossScalerState) {
  return {
    growthFactor: s?.growthFactor,
    backoffFactor: s?.backoffFactor,
    growthInterval: s?.growthInterval,
  };
}
