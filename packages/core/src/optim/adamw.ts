import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber, invalidArgument } from "../errors";
import type { Module } from "../nn/module";
import { deviceStep } from "./adamw-device";
import {
  type FusedStorage,
  createFused,
  fusedMoments,
  fusedStep,
  loadFusedMoments,
  releaseFused,
} from "./adamw-fused";
import { isHostBackend } from "../host-backend";
import { hostStep } from "./adamw-host";
import { FlatLayout } from "./flat-layout";
import {
  type FlatLossScaleArgs,
  flatAdamWKernel,
  type registerFlatAdamWKernel,
} from "./fused-kernels";
import { type FlatGroup, type UpdateMode, disposeDevice, ensureStorage } from "./flat-group";
import {
  type NamedParameters,
  type ParamGroupSpec,
  defaultNoDecay,
  resolveParamGroups,
} from "./param-groups";

/** Options of {@link AdamW}. Defaults are PyTorch's Adam constants and SiT's starting weight decay. */
export interface AdamWOptions {
  /** Learning rate (also settable per step with {@link AdamW.setLr}). */
  lr: number;
  /** Weight decay of decayed groups (default 0.04, SiT's start value). */
  weightDecay?: number;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Which parameters get no decay when groups are built automatically (default {@link defaultNoDecay}). */
  noDecay?: (name: string, param: tf.Variable) => boolean;
  /** Per-tensor clipping (SiT: 3.0): a gradient with norm above c is scaled by c/(norm + 1e-6). Default off. */
  clipPerTensor?: number | null;
  /** Global-norm clipping (PyTorch `clip_grad_norm_`), applied after per-tensor clipping. Default off. */
  clipGlobalNorm?: number | null;
  /**
   * Where the update runs: `host` (one fused loop over typed arrays; moments in host memory),
   * `device` (tfjs kernels on flat buffers; moments in Variables), or `auto` (default): a fused
   * kernel registered for the backend if there is one, else host on the cpu and wasm backends,
   * whose tensors live in host memory anyway, device elsewhere.
   */
  implementation?: "auto" | UpdateMode;
}

/** Checkpointable optimiser state: moments per parameter (own shape), step count and group settings. */
export interface AdamWState {
  step: number;
  groups: { name: string; lr: number; weightDecay: number; params: string[] }[];
  /** `exp_avg.<param>` and `exp_avg_sq.<param>` (PyTorch's names). The caller disposes them. */
  tensors: Record<string, tf.Tensor>;
}

/** Gradients by parameter name (dotted name, or the tfjs Variable's own `name` as `tf.variableGrads` returns). */
export type Gradients = Record<string, tf.Tensor>;

/**
 * AdamW with PyTorch semantics (`torch.optim.AdamW`): for each parameter,
 * `p ← p·(1 − lr·wd)`, then the Adam update with bias correction
 * `p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`.
 *
 * Parameters are grouped (default: SiT's `decay` and `no_decay` groups, see `defaultNoDecay`), and
 * each group is updated as ONE flat buffer, never as a dozen tfjs ops per parameter tensor:
 * - on GPU backends the gradients are concatenated once, the moments live in flat Variables,
 *   the Adam arithmetic is one fixed chain of kernels per group and the result is split back
 *   (about two extra launches per non-vector parameter: a reshape in, a reshape out); per-tensor
 *   clipping reduces all tensors of one size with one `sum`;
 * - on the cpu and wasm backends, whose tensors live in host memory, clipping and the update are
 *   one fused loop over typed arrays (no tfjs kernel at all), which is several times faster there.
 * - where a backend package registered a fused kernel for the active backend
 *   ({@link registerFlatAdamWKernel}; @sit/kernels does for webgpu and wasm), `auto` and `device`
 *   modes hand it every group at once: all moments in two flat buffers, one kernel per step (on
 *   wasm inside the heap, updating the parameters in place).
 * All three paths are checked against PyTorch (adamw.safetensors; the fused one in @sit/kernels).
 */
export class AdamW {
  private readonly groupList: FlatGroup[];
  private readonly byName = new Map<string, { group: FlatGroup; index: number }>();
  private readonly byVariableName = new Map<string, string>();
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private clipPerTensor: number | null = null;
  private clipGlobalNorm: number | null = null;
  private stepCount = 0;
  private readonly implementation: "auto" | UpdateMode;
  /** All groups in one flat buffer, when a fused kernel is registered for the device backend. */
  private fused: FusedStorage | null = null;

  constructor(params: Module | NamedParameters | ParamGroupSpec[], options: AdamWOptions) {
    if (!options || typeof options !== "object")
      throw invalidArgument("options", options, "{ lr, weightDecay?, betas?, eps?, … }");
    const lr = checkNumber("lr", options.lr, { min: 0 });
    const betas = options.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2)
      throw invalidArgument("betas", betas, "[beta1, beta2]");
    this.beta1 = checkNumber("betas[0]", betas[0], { min: 0, max: 1, maxExclusive: true });
    this.beta2 = checkNumber("betas[1]", betas[1], { min: 0, max: 1, maxExclusive: true });
    this.eps = checkNumber("eps", options.eps ?? 1e-8, { min: 0 });
    const wd = checkNumber("weightDecay", options.weightDecay ?? 0.04, { min: 0 });
    const impl = options.implementation ?? "auto";
    if (!["auto", "host", "device"].includes(impl))
      throw invalidArgument("implementation", impl, '"auto", "host" or "device"');
    this.implementation = impl;
    const specs = resolveParamGroups(params, wd, options.noDecay ?? defaultNoDecay);
    this.groupList = specs.map((g) => {
      for (const [n, v] of g.params)
        if (v.dtype !== "float32")
          throw invalidArgument(`parameter ${JSON.stringify(n)}`, v, "a float32 Variable");
      const layout = new FlatLayout(g.params.map(([name, v]) => ({ name, shape: v.shape })));
      const vars = new Map(g.params);
      const group: FlatGroup = {
        name: g.name,
        lr: lr * g.lrScale,
        lrScale: g.lrScale,
        weightDecay: g.weightDecay,
        scheduleWeightDecay: g.scheduleWeightDecay,
        layout,
        vars: layout.names.map((n) => vars.get(n) as tf.Variable),
        assignedIds: [],
        host: null,
        device: null,
      };
      layout.names.forEach((n, index) => {
        this.byName.set(n, { group, index });
        this.byVariableName.set(group.vars[index].name, n);
      });
      return group;
    });
    // Also allocates the moments now, so that steps never change the number of live tensors.
    this.setClipping({ perTensor: options.clipPerTensor, globalNorm: options.clipGlobalNorm });
  }

  /** Where the next step runs (see {@link AdamWOptions.implementation}). */
  mode(): UpdateMode {
    if (this.implementation !== "auto") return this.implementation;
    return isHostBackend() ? "host" : "device";
  }

  private prepare(mode: UpdateMode): void {
    // A fused kernel registered for the active backend (registerFlatAdamWKernel) runs the update
    // unless `host` was asked for explicitly; else `device` mode is the tfjs-op chain of
    // adamw-device.ts and `host` mode the typed-array loop of adamw-host.ts.
    const backend = tf.getBackend();
    const kernel =
      mode === "device" || this.implementation === "auto" ? flatAdamWKernel(backend) : undefined;
    if (this.fused && (this.fused.backend !== backend || !kernel)) {
      releaseFused(this.fused, this.groupList, true);
      this.fused = null;
    }
    if (kernel) {
      if (!this.fused) this.fused = createFused(this.groupList, kernel, backend);
      return;
    }
    for (const g of this.groupList) {
      if (g.layout.total === 0) continue;
      ensureStorage(g, mode);
      if (g.device && this.clipPerTensor !== null && !g.device.segmentIds)
        g.device.segmentIds = g.layout.segmentIds();
      if (g.device && this.clipPerTensor === null && g.device.segmentIds) {
        g.device.segmentIds.dispose();
        g.device.segmentIds = null;
      }
    }
  }

  /** Group names, learning rates and weight decays (a snapshot). */
  get groups(): { name: string; lr: number; weightDecay: number; params: string[] }[] {
    return this.groupList.map((g) => ({
      name: g.name,
      lr: g.lr,
      weightDecay: g.weightDecay,
      params: [...g.layout.names],
    }));
  }

  /** Number of steps taken (PyTorch's `step` state; bias correction uses it). */
  get numSteps(): number {
    return this.stepCount;
  }

  /**
   * What the next {@link AdamW.step} computes with: each group's learning rate and weight decay,
   * the betas and the step number it will count. A captured training step (@sit/kernels'
   * StepCapture) derives the values it writes to the device from them.
   */
  nextStepSettings(): {
    groups: { lr: number; weightDecay: number }[];
    beta1: number;
    beta2: number;
    step: number;
  } {
    return {
      groups: this.groupList.map((g) => ({ lr: g.lr, weightDecay: g.weightDecay })),
      beta1: this.beta1,
      beta2: this.beta2,
      step: this.stepCount + 1,
    };
  }

  /**
   * Count a step whose update ran on the device without {@link AdamW.step}: a captured step
   * replayed (its kernel's work recorded once, with {@link AdamW.nextStepSettings}'s values).
   */
  countReplayedStep(): void {
    this.stepCount++;
  }

  private selectGroups(group: string | number | undefined, what: string): FlatGroup[] {
    if (group === undefined) return this.groupList;
    const g =
      typeof group === "number"
        ? this.groupList[group]
        : this.groupList.find((x) => x.name === group);
    if (!g)
      throw invalidArgument(
        `${what} group`,
        group,
        `a group index < ${this.groupList.length} or one of ${this.groupList.map((x) => x.name).join(", ")}`,
      );
    return [g];
  }

  /** Set the learning rate of every group (times its `lrScale`), or of one group by name or index. */
  setLr(lr: number, group?: string | number): this {
    checkNumber("lr", lr, { min: 0 });
    for (const g of this.selectGroups(group, "setLr")) g.lr = lr * g.lrScale;
    return this;
  }

  /**
   * Set the weight decay of every group that schedules it (by default the decayed group, as SiT/DINO
   * change only group 0), or of one group by name or index.
   */
  setWeightDecay(weightDecay: number, group?: string | number): this {
    checkNumber("weightDecay", weightDecay, { min: 0 });
    const groups = this.selectGroups(group, "setWeightDecay");
    for (const g of groups)
      if (group !== undefined || g.scheduleWeightDecay) g.weightDecay = weightDecay;
    return this;
  }

  /** Change gradient clipping (null turns a kind off). */
  setClipping(clip: { perTensor?: number | null; globalNorm?: number | null }): this {
    const perTensor = clip.perTensor ?? null;
    const globalNorm = clip.globalNorm ?? null;
    if (perTensor !== null) checkNumber("clipPerTensor", perTensor, { min: 0, minExclusive: true });
    if (globalNorm !== null)
      checkNumber("clipGlobalNorm", globalNorm, { min: 0, minExclusive: true });
    this.clipPerTensor = perTensor;
    this.clipGlobalNorm = globalNorm;
    this.prepare(this.mode());
    return this;
  }

  private orderedGradients(grads: Gradients): tf.Tensor[][] {
    if (grads === null || typeof grads !== "object")
      throw invalidArgument(
        "grads",
        grads,
        "an object mapping parameter names to gradient tensors",
      );
    const out = this.groupList.map((g) => new Array<tf.Tensor>(g.vars.length));
    const unexpected: string[] = [];
    // for…in, not Object.entries: this runs every step over every parameter.
    for (const key in grads) {
      if (!Object.hasOwn(grads, key)) continue;
      const t = grads[key];
      const name = this.byName.has(key) ? key : this.byVariableName.get(key);
      const slot = name === undefined ? undefined : this.byName.get(name);
      if (!slot) {
        unexpected.push(key);
        continue;
      }
      const gi = this.groupList.indexOf(slot.group);
      if (!(t instanceof tf.Tensor))
        throw invalidArgument(`grads[${JSON.stringify(key)}]`, t, "a tensor");
      const want = slot.group.vars[slot.index].shape;
      if (!tf.util.arraysEqual(t.shape, want))
        throw new ShapeError(
          `grads[${JSON.stringify(key)}]: expected shape [${want.join(", ")}] (the parameter's), got [${t.shape.join(", ")}]`,
        );
      out[gi][slot.index] = t;
    }
    let complete = true;
    for (let gi = 0; gi < out.length; gi++)
      for (let i = 0; i < out[gi].length; i++) if (out[gi][i] === undefined) complete = false;
    const missing = complete
      ? []
      : this.groupList.flatMap((g, gi) =>
          g.layout.names.filter((_, i) => out[gi][i] === undefined),
        );
    if (unexpected.length > 0 || missing.length > 0) {
      const parts: string[] = [];
      if (missing.length) parts.push(`no gradient for ${missing.join(", ")}`);
      if (unexpected.length)
        parts.push(`gradients for unknown parameters ${unexpected.join(", ")}`);
      throw new ConfigError(
        `AdamW.step: grads must hold exactly the optimised parameters: ${parts.join("; ")} (build the optimiser over the parameters that receive gradients)`,
      );
    }
    return out;
  }

  /**
   * Whether {@link AdamW.step} can take a device-resident loss scale now: a fused kernel that
   * supports it is registered for the active backend and this optimiser uses it.
   */
  fusesLossScale(): boolean {
    this.prepare(this.mode());
    return this.fused !== null && flatAdamWKernel(this.fused.backend)?.lossScale === true;
  }

  /**
   * A loss scaler read that `skipped` more steps were skipped on the device (see
   * {@link FlatLossScaleArgs}): they do not count as steps (PyTorch does not step the optimiser
   * on them), so the step count drops by as many.
   */
  discountSkippedSteps(skipped: number): void {
    checkNumber("skipped", skipped, { integer: true, min: 0, max: this.stepCount });
    this.stepCount -= skipped;
  }

  /**
   * One optimisation step with the given gradients (one per optimised parameter; not disposed).
   * Clipping (if configured) happens first, then decoupled weight decay and the Adam update.
   * With `lossScale` (only where {@link AdamW.fusesLossScale}), the gradients are of the scaled
   * loss: the kernel unscales them before clipping, skips the step on an inf/NaN and updates the
   * scale, all on the device; the step counts until a read of the scale's state says it was
   * skipped ({@link AdamW.discountSkippedSteps}). Returns the kernel's copy of that state after
   * the step (the caller disposes it), else undefined.
   */
  step(grads: Gradients, options: { lossScale?: FlatLossScaleArgs } = {}): tf.Tensor | undefined {
    const ordered = this.orderedGradients(grads);
    const mode = this.mode();
    this.prepare(mode);
    const { lossScale } = options;
    if (lossScale && !this.fusesLossScale())
      throw new ConfigError(
        `AdamW.step: options.lossScale needs a fused AdamW kernel that unscales on the device, and backend '${tf.getBackend()}' (implementation '${this.implementation}') has none; unscale the gradients first (DynamicLossScaler.unscale)`,
      );
    this.stepCount++;
    const hyper = {
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      clipPerTensor: this.clipPerTensor,
      clipGlobalNorm: this.clipGlobalNorm,
      step: this.stepCount,
    };
    if (this.fused) return fusedStep(this.fused, this.groupList, ordered, hyper, lossScale);
    if (mode === "host") hostStep(this.groupList, ordered, hyper);
    else tf.tidy(() => deviceStep(this.groupList, ordered, hyper));
    return undefined;
  }

  /** The state to checkpoint: per-parameter moments (PyTorch names) plus step and group settings. */
  state(): AdamWState {
    if (this.fused)
      return { step: this.stepCount, groups: this.groups, tensors: fusedMoments(this.fused) };
    const tensors = tf.tidy(() => {
      const out: Record<string, tf.Tensor> = {};
      for (const g of this.groupList) {
        const { names, offsets, sizes, shapes } = g.layout;
        if (g.host) {
          const { m, v } = g.host;
          names.forEach((n, i) => {
            const [a, b] = [offsets[i], offsets[i] + sizes[i]];
            // Copies: the host moments are updated in place by later steps.
            out[`exp_avg.${n}`] = tf.tensor(m.slice(a, b), shapes[i], "float32");
            out[`exp_avg_sq.${n}`] = tf.tensor(v.slice(a, b), shapes[i], "float32");
          });
        } else if (g.device) {
          const { m: dm, v: dv } = g.device;
          const m = g.layout.unflatten(dm);
          const v = g.layout.unflatten(dv);
          names.forEach((n, i) => {
            // A lone rank-1 parameter's "part" is the Variable itself: copy it.
            out[`exp_avg.${n}`] = m[i] === dm ? m[i].clone() : m[i];
            out[`exp_avg_sq.${n}`] = v[i] === dv ? v[i].clone() : v[i];
          });
        }
      }
      return out;
    });
    return { step: this.stepCount, groups: this.groups, tensors };
  }

  /** Restore {@link AdamW.state}: same parameter names and shapes; the tensors are not disposed. */
  loadState(state: AdamWState): void {
    if (!state || typeof state !== "object" || typeof state.tensors !== "object")
      throw invalidArgument("state", state, "an AdamWState { step, groups, tensors }");
    checkNumber("state.step", state.step, { integer: true, min: 0 });
    const missing: string[] = [];
    const misShaped: string[] = [];
    for (const g of this.groupList)
      g.layout.names.forEach((n, i) => {
        for (const k of [`exp_avg.${n}`, `exp_avg_sq.${n}`]) {
          const t = state.tensors[k];
          if (!t) missing.push(k);
          else if (!tf.util.arraysEqual(t.shape, g.layout.shapes[i]))
            misShaped.push(`${k} (expected [${g.layout.shapes[i]}], got [${t.shape}])`);
        }
      });
    if (missing.length || misShaped.length)
      throw new ShapeError(
        `AdamW.loadState: ${[missing.length ? `missing ${missing.join(", ")}` : "", misShaped.length ? `mis-shaped ${misShaped.join("; ")}` : ""].filter(Boolean).join("; ")}`,
      );
    if (state.groups !== undefined) {
      if (!Array.isArray(state.groups) || state.groups.length !== this.groupList.length)
        throw invalidArgument("state.groups", state.groups, `${this.groupList.length} groups`);
      state.groups.forEach((s, i) => {
        const g = this.groupList[i];
        g.lr = checkNumber(`state.groups[${i}].lr`, s.lr, { min: 0 });
        g.weightDecay = checkNumber(`state.groups[${i}].weightDecay`, s.weightDecay, { min: 0 });
      });
    }
    this.prepare(this.mode());
    if (this.fused) loadFusedMoments(this.fused, state.tensors);
    for (const g of this.groupList) {
      const { names, offsets } = g.layout;
      const read = (prefix: string): Float32Array => {
        const flat = new Float32Array(g.layout.total);
        names.forEach((n, i) => {
          flat.set(state.tensors[`${prefix}.${n}`].dataSync(), offsets[i]);
        });
        return flat;
      };
      if (g.host) {
        g.host.m.set(read("exp_avg"));
        g.host.v.set(read("exp_avg_sq"));
      } else if (g.device) {
        const { m, v } = g.device;
        tf.tidy(() => {
          m.assign(
            g.layout.flatten(names.map((n) => state.tensors[`exp_avg.${n}`].cast("float32"))),
          );
          v.assign(
            g.layout.flatten(names.map((n) => state.tensors[`exp_avg_sq.${n}`].cast("float32"))),
          );
        });
      }
    }
    this.stepCount = state.step;
  }

  /** Release the optimiser's buffers (moments, flat parameter copy). The parameters are untouched. */
  dispose(): void {
    if (this.fused) releaseFused(this.fused, this.groupList, false);
    this.fused = null;
    for (const g of this.groupList) {
      disposeDevice(g);
      g.host = null;
    }
  }
}
