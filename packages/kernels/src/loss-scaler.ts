import * as tf from "@tensorflow/tfjs";
import {
  type AdamW,
  ConfigError,
  type FlatLossScaleArgs,
  type FlatSkipFlag,
  describeValue,
} from "@sit/core";

// Dynamic loss scaling for mixed precision, with the semantics of PyTorch's
// torch.cuda.amp.GradScaler: the loss is multiplied by the scale before the backward pass so that
// small gradients survive f16; the gradients are divided by it again (before clipping and the
// optimiser). A step whose gradients hold an inf or NaN (an f16 overflow) is skipped — no
// optimiser step, no EMA update — and the scale is multiplied by the backoff factor; after
// `growthInterval` consecutive clean steps it is multiplied by the growth factor (kept only if
// still finite in f32). The scale is an f32 value, as PyTorch's scale tensor is.
//
// On the host (the portable path) the step reads the found-inf flag back before deciding. With
// `useDevice` (webgpu's fused AdamW, as PyTorch's fused optimisers take `found_inf`) the scale,
// growth tracker and skip count live in device tensors that the AdamW kernel updates itself, the
// EMA kernel reads the flag, and the host learns the state by late reads of a per-step copy
// (`track`), never by waiting inside a step.

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
  private device: DeviceState | null = null;

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

  /** `loss · scale` (a new tensor; with {@link DynamicLossScaler.useDevice}, the device's scale). */
  scaleLoss<T extends tf.Tensor>(loss: T): T {
    if (this.device) return tf.mul(loss, this.device.scale) as T;
    return tf.mul(loss, tf.scalar(this.current)) as T;
  }

  /** Whether the state lives on the device ({@link DynamicLossScaler.useDevice}). */
  get onDevice(): boolean {
    return this.device !== null;
  }

  /**
   * Move the state onto the device, for a fused optimiser that unscales, checks and skips there
   * ({@link DynamicLossScaler.deviceArgs}). From then on `scale`, `growthTracker` and `state()`
   * are those of the last step whose copy was read ({@link DynamicLossScaler.track},
   * {@link DynamicLossScaler.sync}). Idempotent.
   */
  useDevice(): void {
    if (this.device) return;
    if (this.options.growthInterval > 2 ** 24)
      throw new ConfigError(
        `lossScaler growthInterval: the device keeps the growth tracker in f32, so at most 2^24 (16777216), got ${this.options.growthInterval}`,
      );
    // Buffers of their own: the kernel writes them in place.
    const [state, scale] = tf.tidy(() => [
      tf.variable(tf.tensor1d([this.current, this.tracker, 0, 0]), false),
      tf.variable(tf.scalar(this.current), false),
    ]);
    this.device = {
      state,
      scale,
      knownSkips: 0,
      unresolved: 0,
      reads: Promise.resolve(),
      error: null,
    };
  }

  /** Back to the host path (after {@link DynamicLossScaler.sync}): the device tensors are released. */
  async useHost(): Promise<void> {
    if (!this.device) return;
    await this.sync();
    tf.dispose([this.device.state, this.device.scale]);
    this.device = null;
  }

  private requireDevice(what: string): DeviceState {
    if (!this.device)
      throw new ConfigError(
        `DynamicLossScaler.${what}: the state is on the host; call useDevice()`,
      );
    if (this.device.error) throw this.device.error;
    return this.device;
  }

  /** The arguments of a fused AdamW step that unscales on the device (`AdamW.step`'s lossScale). */
  deviceArgs(): FlatLossScaleArgs {
    const d = this.requireDevice("deviceArgs");
    const { growthFactor, backoffFactor, growthInterval } = this.options;
    return {
      state: d.state,
      scale: d.scale,
      growthFactor,
      backoffFactor,
      growthInterval,
      knownSkips: d.knownSkips,
      unresolved: d.unresolved,
    };
  }

  /**
   * One optimiser step on the gradients of the scaled loss, with the state on the device
   * ({@link DynamicLossScaler.useDevice}; `optimizer.fusesLossScale()` must hold): the fused
   * AdamW unscales, skips on an inf/NaN and updates the scale, and the late read of its copy of
   * the state is started ({@link DynamicLossScaler.track}). Nothing waits for the device.
   */
  stepOnDevice(optimizer: AdamW, grads: Record<string, tf.Tensor>): void {
    const snapshot = optimizer.step(grads, { lossScale: this.deviceArgs() });
    if (!snapshot)
      throw new Error("DynamicLossScaler.stepOnDevice: the optimiser returned no state");
    this.track(snapshot, (n) => optimizer.discountSkippedSteps(n));
  }

  /** The device's found-inf flag of the last step, for an EMA that skips with it. */
  skipFlag(): FlatSkipFlag {
    return { tensor: this.requireDevice("skipFlag").state, index: 2 };
  }

  /**
   * Start the late read of `snapshot` (the fused step's copy of the state after it; disposed
   * here) without waiting for it. Call it right after that step, before the next one (the next
   * step's `deviceArgs` count it as unread). Reads complete in step order; each updates `scale` and
   * `growthTracker` and hands the number of newly skipped steps to `onSkipped` (the optimiser
   * discounts them from its step count).
   */
  track(snapshot: tf.Tensor, onSkipped: (skipped: number) => void): void {
    const d = this.requireDevice("track");
    // Kept past an enclosing tf.tidy (a step's scope): disposed here once read.
    tf.keep(snapshot);
    d.unresolved++;
    // Started once the synchronous rest of the step is encoded (a microtask): the read's submit
    // then carries the whole step, as the step's loss read does, instead of cutting it in two.
    const read = new Promise<Float32Array>((resolve, reject) =>
      queueMicrotask(() => (snapshot.data() as Promise<Float32Array>).then(resolve, reject)),
    );
    d.reads = d.reads.then(async () => {
      try {
        const [scale, tracker, , skips] = await read;
        this.current = scale;
        this.tracker = tracker;
        const fresh = skips - d.knownSkips;
        d.knownSkips = skips;
        d.unresolved--;
        if (fresh > 0) onSkipped(fresh);
      } catch (e) {
        d.error ??= e instanceof Error ? e : new Error(String(e));
      } finally {
        snapshot.dispose();
      }
    });
  }

  /** Wait until every tracked step's state has been read (nothing to wait for on the host path). */
  async sync(): Promise<void> {
    if (!this.device) return;
    await this.device.reads;
    if (this.device.error) throw this.device.error;
  }

  /**
   * The gradients divided by the scale (new tensors, same names), and a scalar that is NaN when
   * any scaled gradient holds an inf or NaN, else 0 (checked elementwise before the division, as
   * PyTorch does: `g·0` is NaN exactly where g is not finite).
   */
  unscale(grads: Record<string, tf.Tensor>): ScaledGradients {
    this.requireHost("unscale");
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
    this.requireHost("update");
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

  private requireHost(what: string): void {
    if (this.device)
      throw new ConfigError(
        `DynamicLossScaler.${what}: the state is on the device (useDevice); the fused optimiser unscales and updates it`,
      );
  }

  /** The state a checkpoint keeps (on the device: after {@link DynamicLossScaler.sync}). */
  state(): LossScalerState {
    if (this.device?.unresolved)
      throw new ConfigError(
        `DynamicLossScaler.state: ${this.device.unresolved} step(s) not read back yet; await sync() first`,
      );
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
    if (this.device?.unresolved)
      throw new ConfigError(
        `DynamicLossScaler.loadState: ${this.device.unresolved} step(s) not read back yet; await sync() first`,
      );
    this.options = { ...o, initScale: this.options.initScale };
    this.current = Math.fround(state.scale);
    this.tracker = state.growthTracker;
    if (this.device) {
      const d = this.device;
      // Skips are counted from here again (the optimiser's restored step count already has them).
      tf.tidy(() => {
        d.state.assign(tf.tensor1d([this.current, this.tracker, 0, 0]));
        d.scale.assign(tf.scalar(this.current));
      });
      d.knownSkips = 0;
    }
  }
}

/** A scaler's state on the device (see {@link DynamicLossScaler.useDevice}). */
interface DeviceState {
  /** [scale, growth tracker, found inf of the last step, skipped steps], updated by the kernel. */
  state: tf.Variable;
  /** The scale as a scalar, which the loss is multiplied by. */
  scale: tf.Variable;
  /** Skipped steps in the last read copy of `state`. */
  knownSkips: number;
  /** Steps tracked whose copy has not been read yet. */
  unresolved: number;
  /** The chain of late reads, in step order. */
  reads: Promise<void>;
  /** The first failed read, thrown by the next call. */
  error: Error | null;
}

function pickFactors(s: LossScalerState) {
  return {
    growthFactor: s?.growthFactor,
    backoffFactor: s?.backoffFactor,
    growthInterval: s?.growthInterval,
  };
}
