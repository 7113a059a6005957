import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber, invalidArgument } from "../errors";
import type { Module } from "../nn/module";
import { FlatLayout } from "./flat-layout";
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

interface Group {
  name: string;
  lr: number;
  lrScale: number;
  weightDecay: number;
  scheduleWeightDecay: boolean;
  layout: FlatLayout;
  /** Parameters in flat order. */
  vars: tf.Variable[];
  expAvg: tf.Variable | null;
  expAvgSq: tf.Variable | null;
  /** Flat copy of the parameters, valid while every Variable still holds what we last assigned. */
  flatParams: tf.Variable | null;
  assignedIds: unknown[];
  segmentIds: tf.Tensor1D | null;
}

/**
 * AdamW with PyTorch semantics (`torch.optim.AdamW`): for each parameter,
 * `p ← p·(1 − lr·wd)`, then the Adam update with bias correction
 * `p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`.
 *
 * Parameters are grouped (default: SiT's `decay` and `no_decay` groups, see `defaultNoDecay`), and
 * each group is updated as ONE flat buffer: gradients are concatenated once, the moments live
 * in flat Variables, the Adam arithmetic runs once per group, and the result is split back into
 * the parameters. The number of tfjs kernels per step therefore grows by about two per
 * non-vector parameter (a reshape in, a reshape out) instead of a dozen per parameter.
 * Per-tensor clipping reduces all tensors of one size with one `sum`.
 */
export class AdamW {
  private readonly groupList: Group[];
  private readonly byName = new Map<string, { group: Group; index: number }>();
  private readonly byVariableName = new Map<string, string>();
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private clipPerTensor: number | null = null;
  private clipGlobalNorm: number | null = null;
  private stepCount = 0;

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
    const specs = resolveParamGroups(params, wd, options.noDecay ?? defaultNoDecay);
    this.groupList = specs.map((g) => {
      const layout = new FlatLayout(g.params.map(([name, v]) => ({ name, shape: v.shape })));
      const vars = new Map(g.params);
      const group: Group = {
        name: g.name,
        lr: lr * g.lrScale,
        lrScale: g.lrScale,
        weightDecay: g.weightDecay,
        scheduleWeightDecay: g.scheduleWeightDecay,
        layout,
        vars: layout.names.map((n) => vars.get(n) as tf.Variable),
        expAvg: layout.total > 0 ? tf.variable(tf.zeros([layout.total]), false) : null,
        expAvgSq: layout.total > 0 ? tf.variable(tf.zeros([layout.total]), false) : null,
        flatParams: null,
        assignedIds: [],
        segmentIds: null,
      };
      if (layout.total > 0) {
        group.flatParams = tf.tidy(() => tf.variable(layout.flatten(group.vars), false));
        group.assignedIds = group.vars.map((v) => v.dataId);
      }
      layout.names.forEach((n, index) => {
        this.byName.set(n, { group, index });
        this.byVariableName.set(group.vars[index].name, n);
      });
      return group;
    });
    this.setClipping({ perTensor: options.clipPerTensor, globalNorm: options.clipGlobalNorm });
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

  private selectGroups(group: string | number | undefined, what: string): Group[] {
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
    for (const g of this.groupList) {
      if (perTensor !== null && !g.segmentIds && g.layout.total > 0)
        g.segmentIds = g.layout.segmentIds();
      if (perTensor === null && g.segmentIds) {
        g.segmentIds.dispose();
        g.segmentIds = null;
      }
    }
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
    for (const [key, t] of Object.entries(grads)) {
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
    const missing = this.groupList.flatMap((g, gi) =>
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
   * One optimisation step with the given gradients (one per optimised parameter; not disposed).
   * Clipping (if configured) happens first, then decoupled weight decay and the Adam update.
   */
  step(grads: Gradients): void {
    const ordered = this.orderedGradients(grads);
    this.stepCount++;
    const t = this.stepCount;
    tf.tidy(() => {
      const active = this.groupList.filter((g) => g.layout.total > 0);
      let flats = active.map((g) => g.layout.flatten(ordered[this.groupList.indexOf(g)]));
      const squares: tf.Tensor[] = [];
      if (this.clipPerTensor !== null) {
        const c = this.clipPerTensor;
        flats = flats.map((flat, i) => {
          const g = active[i];
          const sums = g.layout.segmentSums(tf.square(flat));
          // SiT's clip_gradients: coef = c / (‖g‖ + 1e-6), applied when it is below 1.
          const scale = tf.minimum(tf.div(c, tf.sqrt(sums).add(1e-6)), 1);
          if (this.clipGlobalNorm !== null) squares.push(tf.sum(sums.mul(tf.square(scale))));
          return flat.mul(tf.gather(scale, g.segmentIds as tf.Tensor1D));
        });
      } else if (this.clipGlobalNorm !== null) {
        for (const flat of flats) squares.push(tf.sum(tf.square(flat)));
      }
      if (this.clipGlobalNorm !== null && squares.length > 0) {
        const total = tf.sqrt(squares.length === 1 ? squares[0] : tf.addN(squares));
        const coef = tf.minimum(tf.div(this.clipGlobalNorm, total.add(1e-6)), 1);
        flats = flats.map((f) => f.mul(coef));
      }
      for (const [i, g] of active.entries()) this.updateGroup(g, flats[i], t);
    });
  }

  private currentFlatParams(g: Group): tf.Tensor1D {
    const fresh = g.vars.every((v, i) => v.dataId === g.assignedIds[i]);
    if (!fresh) (g.flatParams as tf.Variable).assign(g.layout.flatten(g.vars));
    return g.flatParams as tf.Variable as unknown as tf.Tensor1D;
  }

  private updateGroup(g: Group, grad: tf.Tensor1D, t: number): void {
    const { beta1: b1, beta2: b2, eps } = this;
    const lr = g.lr;
    const m = g.expAvg as tf.Variable;
    const v = g.expAvgSq as tf.Variable;
    let p: tf.Tensor = this.currentFlatParams(g);
    if (g.weightDecay !== 0 && lr !== 0) p = p.mul(1 - lr * g.weightDecay);
    const mNew = m.mul(b1).add(grad.mul(1 - b1));
    const vNew = v.mul(b2).add(tf.square(grad).mul(1 - b2));
    const stepSize = lr / (1 - b1 ** t);
    const denom = tf
      .sqrt(vNew)
      .div(Math.sqrt(1 - b2 ** t))
      .add(eps);
    const pNew = p.sub(mNew.div(denom).mul(stepSize));
    m.assign(mNew);
    v.assign(vNew);
    (g.flatParams as tf.Variable).assign(pNew);
    const parts = g.layout.unflatten(pNew);
    for (const [i, variable] of g.vars.entries()) variable.assign(parts[i]);
    g.assignedIds = g.vars.map((variable) => variable.dataId);
  }

  /** The state to checkpoint: per-parameter moments (PyTorch names) plus step and group settings. */
  state(): AdamWState {
    const tensors = tf.tidy(() => {
      const out: Record<string, tf.Tensor> = {};
      for (const g of this.groupList) {
        if (!g.expAvg || !g.expAvgSq) continue;
        const m = g.layout.unflatten(g.expAvg);
        const v = g.layout.unflatten(g.expAvgSq);
        g.layout.names.forEach((n, i) => {
          // A lone rank-1 parameter's "part" is the Variable itself: copy it.
          out[`exp_avg.${n}`] = m[i] === g.expAvg ? m[i].clone() : m[i];
          out[`exp_avg_sq.${n}`] = v[i] === g.expAvgSq ? v[i].clone() : v[i];
        });
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
    tf.tidy(() => {
      for (const g of this.groupList) {
        if (!g.expAvg || !g.expAvgSq) continue;
        const get = (prefix: string) =>
          g.layout.names.map((n) => state.tensors[`${prefix}.${n}`].cast("float32"));
        g.expAvg.assign(g.layout.flatten(get("exp_avg")));
        g.expAvgSq.assign(g.layout.flatten(get("exp_avg_sq")));
      }
    });
    this.stepCount = state.step;
  }

  /** Release the optimiser's buffers (moments, flat parameter copy). The parameters are untouched. */
  dispose(): void {
    for (const g of this.groupList) {
      for (const t of [g.expAvg, g.expAvgSq, g.flatParams, g.segmentIds]) t?.dispose();
      g.expAvg = g.expAvgSq = g.flatParams = g.segmentIds = null;
    }
  }
}
