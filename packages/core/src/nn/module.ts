import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, describeValue } from "../errors";

/** A name → tensor mapping, as PyTorch's `state_dict()`. Values are float32 unless stated. */
export type StateDict = Record<string, tf.Tensor>;

/**
 * How a parameter is laid out in PyTorch, when that differs from ours, so converters can map
 * state dicts both ways: `linear` (ours [in,out] ↔ torch [out,in]); `conv2d` (patch embedding:
 * ours [kh·kw·C, D] in (row, col, channel) order ↔ torch [D, C, kh, kw]); `convTranspose2d`
 * (ours [D, kh·kw·C] ↔ torch [D, C, kh, kw]). Parameters without a tag have the same layout.
 */
export type TorchLayout =
  | { kind: "linear" }
  | { kind: "conv2d"; torchShape: [number, number, number, number] }
  | { kind: "convTranspose2d"; torchShape: [number, number, number, number] };

export interface ParameterOptions {
  /** Default true. */
  trainable?: boolean;
  /** PyTorch layout of this parameter when it differs from ours. */
  torchLayout?: TorchLayout;
}

/** Result of {@link Module.loadStateDict}. */
export interface LoadStateDictResult {
  /** Names the module has but the dict lacks. */
  missing: string[];
  /** Names the dict has but the module lacks. */
  unexpected: string[];
}

/**
 * Registrations of parameters and modules made so far, in any module: a module's cached list of
 * named parameters is current while this is unchanged (a registration anywhere below it is one).
 */
let registrations = 0;

/**
 * Base class of every model part: named parameters (trainable tfjs Variables), buffers
 * (non-trainable Variables such as BatchNorm running statistics) and child modules, addressed by
 * dotted names that follow timm/DINO (`blocks.3.attn.qkv.weight`) so state dicts round-trip with
 * PyTorch. Subclasses register in their constructor, in PyTorch's order.
 */
export abstract class Module {
  private readonly _params = new Map<string, tf.Variable>();
  private readonly _buffers = new Map<string, tf.Variable>();
  private readonly _modules = new Map<string, Module>();
  private readonly _layouts = new Map<string, TorchLayout>();
  /** Train mode (dropout/drop-path active, BatchNorm uses batch statistics). */
  training = true;
  /**
   * `namedParameters()` as of `registrations` = `at`: training reads it several times per step
   * (gradients, optimiser, EMA teacher), ≈ 170 dotted names built each time for a ViT.
   */
  private _named: { at: number; list: [string, tf.Variable][] } | null = null;

  /** Register a trainable parameter; takes ownership of `init` (it is disposed). */
  protected registerParameter(
    name: string,
    init: tf.Tensor,
    options: ParameterOptions = {},
  ): tf.Variable {
    this.checkName(name);
    const v = tf.variable(init, options.trainable ?? true);
    init.dispose();
    this._params.set(name, v);
    registrations++;
    if (options.torchLayout) this._layouts.set(name, options.torchLayout);
    return v;
  }

  /** Register a non-trainable buffer (state that is saved but not optimised). */
  protected registerBuffer(name: string, init: tf.Tensor): tf.Variable {
    this.checkName(name);
    const v = tf.variable(init, false);
    init.dispose();
    this._buffers.set(name, v);
    return v;
  }

  /** Register a child module under `name` (a dotted prefix of its parameters' names). */
  protected registerModule<M extends Module>(name: string, module: M): M {
    this.checkName(name);
    this._modules.set(name, module);
    registrations++;
    return module;
  }

  private checkName(name: string): void {
    if (!name || name.includes("."))
      throw new ConfigError(
        `name: expected a non-empty name without '.', got ${describeValue(name)}`,
      );
    if (this._params.has(name) || this._buffers.has(name) || this._modules.has(name)) {
      throw new ConfigError(`name: "${name}" is already registered in ${this.constructor.name}`);
    }
  }

  /** Direct children, in registration order. */
  namedChildren(): [string, Module][] {
    return [...this._modules.entries()];
  }

  /** All descendant modules (this one first) with dotted names. */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this._modules) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** All parameters with dotted names, in registration order (depth first). */
  namedParameters(prefix = ""): [string, tf.Variable][] {
    if (!prefix && this._named?.at === registrations) return this._named.list.slice();
    const out: [string, tf.Variable][] = [];
    for (const [n, p] of this._params) out.push([prefix ? `${prefix}.${n}` : n, p]);
    for (const [n, m] of this._modules)
      out.push(...m.namedParameters(prefix ? `${prefix}.${n}` : n));
    if (!prefix) this._named = { at: registrations, list: out.slice() };
    return out;
  }

  /** PyTorch layout tags of the parameters that have one, by dotted name (see {@link TorchLayout}). */
  namedTorchLayouts(prefix = ""): [string, TorchLayout][] {
    const out: [string, TorchLayout][] = [];
    for (const [n, l] of this._layouts) out.push([prefix ? `${prefix}.${n}` : n, l]);
    for (const [n, m] of this._modules)
      out.push(...m.namedTorchLayouts(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  parameters(): tf.Variable[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** All buffers with dotted names. */
  namedBuffers(prefix = ""): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    for (const [n, b] of this._buffers) out.push([prefix ? `${prefix}.${n}` : n, b]);
    for (const [n, m] of this._modules) out.push(...m.namedBuffers(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Number of scalar parameters. */
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  /** Set train mode on this module and every descendant. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Set eval mode on this module and every descendant. */
  eval(): this {
    return this.train(false);
  }

  /** Mark every parameter trainable or frozen (a frozen module receives no gradients from `tf.grads`). */
  setTrainable(trainable: boolean): this {
    for (const p of this.parameters()) p.trainable = trainable;
    return this;
  }

  /**
   * Parameters and buffers by name. The tensors are the module's own Variables: read them, do not
   * dispose them (clone first if you need to keep a snapshot).
   */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [n, p] of this.namedParameters()) out[n] = p;
    for (const [n, b] of this.namedBuffers()) out[n] = b;
    return out;
  }

  /**
   * Copy values from `dict` into the module's Variables. Mis-shaped entries always throw (naming
   * every one); with `strict` (the default) missing or unexpected names throw too.
   */
  loadStateDict(dict: StateDict, options: { strict?: boolean } = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const own = new Map<string, tf.Variable>([...this.namedParameters(), ...this.namedBuffers()]);
    const missing = [...own.keys()].filter((k) => !(k in dict));
    const unexpected = Object.keys(dict).filter((k) => !own.has(k));
    const misShaped: string[] = [];
    for (const [k, v] of own) {
      const t = dict[k];
      if (t && !tf.util.arraysEqual(t.shape, v.shape))
        misShaped.push(`${k} (expected [${v.shape}], got [${t.shape}])`);
    }
    if (misShaped.length > 0) {
      throw new ShapeError(
        `loadStateDict: ${misShaped.length} mis-shaped entr${misShaped.length === 1 ? "y" : "ies"}: ${misShaped.join("; ")}`,
      );
    }
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing keys: ${missing.join(", ")}`);
      if (unexpected.length) parts.push(`unexpected keys: ${unexpected.join(", ")}`);
      throw new ShapeError(`loadStateDict (strict): ${parts.join("; ")}`);
    }
    for (const [k, v] of own) {
      const t = dict[k];
      if (!t) continue;
      if (t.dtype === v.dtype) v.assign(t);
      else {
        const cast = t.cast(v.dtype);
        v.assign(cast);
        cast.dispose();
      }
    }
    return { missing, unexpected };
  }

  /** Release every Variable of this module and its descendants. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const [, b] of this.namedBuffers()) b.dispose();
  }
}
