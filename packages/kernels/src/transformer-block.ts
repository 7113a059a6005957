import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber, describeValue } from "@sit/core";
import { packedSelfAttention } from "./attention";
import { fusedLinear } from "./fused-linear";
import { layerNorm } from "./layer-norm";
import { linear } from "./linear";
import { halfActive } from "./precision";
import { MAX_HEAD_DIM } from "./webgpu/attention-general";
import {
  BLOCK_KERNEL,
  BLOCK_SCALED_KERNEL,
  type BlockAttrs,
  registerBlockKernels,
  holdVariables,
  savedInputNames,
} from "./webgpu/block";
import { blockWeightGradients } from "./webgpu/block-encode";
import { gradTempLayout, workspaceLayout } from "./webgpu/block-layout";
import { webgpuKernelsEnabled } from "./webgpu/register";
import { runKernelSaving } from "./webgpu/tape";

/** A LayerNorm's parameters (the shape of @sit/core's `LayerNorm` module). */
export interface NormWeights {
  weight: tf.Tensor;
  bias: tf.Tensor;
  eps: number;
}

/** A linear layer's parameters, weight `[in, out]` (the shape of @sit/core's `Linear`). */
export interface LinearWeights {
  weight: tf.Tensor;
  bias: tf.Tensor | null;
}

/** The parameters of a pre-norm transformer block, named as timm's `Block`. */
export interface TransformerBlockWeights {
  norm1: NormWeights;
  qkv: LinearWeights;
  proj: LinearWeights;
  norm2: NormWeights;
  fc1: LinearWeights;
  fc2: LinearWeights;
}

/**
 * The tensors of `w` as `[name, tensor]`, named `layer.weight` / `layer.bias` in timm's order
 * (absent biases left out): the block's parameters in a fixed order, for gradients and disposal.
 */
export function namedBlockWeights(w: TransformerBlockWeights): [string, tf.Tensor][] {
  const out: [string, tf.Tensor][] = [];
  for (const [name, layer] of Object.entries(w))
    for (const key of ["weight", "bias"] as const) {
      const t = (layer as LinearWeights)[key];
      if (t) out.push([`${name}.${key}`, t]);
    }
  return out;
}

/** Options of {@link transformerBlock}. */
export interface TransformerBlockOptions {
  /** Attention heads (a divisor of D). */
  numHeads: number;
  /**
   * Per-sample stochastic-depth factors `[B]` of the attention and MLP branches (0 or 1/keep),
   * constants: no gradient flows into them. Null or absent: no drop path.
   */
  dropScales?: [tf.Tensor, tf.Tensor] | null;
  /** Also return the attention probabilities `[B, H, N, N]` (forces the portable path). */
  returnAttention?: boolean;
}

/** What {@link transformerBlock} returns. */
export interface TransformerBlockResult {
  output: tf.Tensor3D;
  attention?: tf.Tensor4D;
}

let fusedOnWebgpu = true;

/**
 * Turn the fused webgpu block on (default) or off; off, {@link transformerBlock} composes the
 * block from the package's other kernels on webgpu too (for comparisons and benchmarks).
 */
export function setWebgpuFusedBlock(enabled: boolean): void {
  fusedOnWebgpu = enabled === true;
}

/** Check `t` is a float32 tensor of shape [d0] (d1 undefined) or [d0, d1]. */
function checkShape(name: string, t: unknown, d0: number, d1?: number): void {
  const rank = d1 === undefined ? 1 : 2;
  // (No expected-shape array unless it fails: this runs for every weight of every block, every step.)
  if (
    !(t instanceof tf.Tensor) ||
    t.rank !== rank ||
    t.shape[0] !== d0 ||
    (d1 !== undefined && t.shape[1] !== d1) ||
    t.dtype !== "float32"
  )
    throw new ShapeError(
      `transformerBlock ${name}: expected a float32 tensor of shape [${d1 === undefined ? [d0] : [d0, d1]}], got ${describeValue(t)}`,
    );
}

function checkLinear(weight: string, bias: string, l: LinearWeights, i: number, out: number): void {
  checkShape(weight, l?.weight, i, out);
  if (l.bias != null) checkShape(bias, l.bias, out);
}

function checkNorm(
  weight: string,
  bias: string,
  eps: string,
  n: TransformerBlockWeights["norm1"],
  d: number,
): void {
  checkShape(weight, n?.weight, d);
  checkShape(bias, n.bias, d);
  checkNumber(eps, n.eps, { min: 0 });
}

/** Validate a block's arguments; returns the MLP width. */
export function checkBlockArgs(
  x: tf.Tensor,
  w: TransformerBlockWeights,
  o: TransformerBlockOptions,
): number {
  if (!(x instanceof tf.Tensor) || x.rank !== 3 || x.dtype !== "float32")
    throw new ShapeError(
      `transformerBlock x: expected a float32 tensor [B, N, D], got ${describeValue(x)}`,
    );
  const [b, , d] = x.shape;
  if (w === null || typeof w !== "object")
    throw new ConfigError(`transformerBlock weights: expected an object, got ${describeValue(w)}`);
  checkNumber("numHeads", o.numHeads, { integer: true, min: 1 });
  if (d % o.numHeads !== 0)
    throw new ConfigError(`numHeads: expected a divisor of D = ${d}, got ${o.numHeads}`);
  const hidden = w.fc1?.weight?.shape?.[1] ?? -1;
  // Checked for every block of every forward: names spelled out, no strings built per call.
  checkLinear("qkv.weight", "qkv.bias", w.qkv, d, 3 * d);
  checkLinear("proj.weight", "proj.bias", w.proj, d, d);
  checkLinear("fc1.weight", "fc1.bias", w.fc1, d, hidden);
  checkLinear("fc2.weight", "fc2.bias", w.fc2, hidden, d);
  checkNorm("norm1.weight", "norm1.bias", "norm1.eps", w.norm1, d);
  checkNorm("norm2.weight", "norm2.bias", "norm2.eps", w.norm2, d);
  if (o.dropScales != null) {
    if (!Array.isArray(o.dropScales) || o.dropScales.length !== 2)
      throw new ShapeError(
        `transformerBlock dropScales: expected two tensors [${b}], got ${describeValue(o.dropScales)}`,
      );
    checkShape("dropScales[0]", o.dropScales[0], b);
    checkShape("dropScales[1]", o.dropScales[1], b);
  }
  return hidden;
}

/**
 * The pre-norm transformer block composed from this package's kernels (LayerNorm, linear, packed
 * attention, fused linear with residual): the reference the fused kernel is tested against, and
 * the path on every backend without one.
 */
export function portableTransformerBlock(
  x: tf.Tensor3D,
  w: TransformerBlockWeights,
  options: TransformerBlockOptions,
): TransformerBlockResult {
  return tf.tidy(() => {
    const [s0, s1] = options.dropScales ?? [null, null];
    const a = layerNorm(x, w.norm1.weight, w.norm1.bias, w.norm1.eps);
    const r = packedSelfAttention(linear(a, w.qkv.weight, w.qkv.bias) as tf.Tensor3D, {
      numHeads: options.numHeads,
      returnProbabilities: options.returnAttention === true,
    });
    const h = fusedLinear(r.output, w.proj.weight, w.proj.bias, { residual: x, rowScale: s0 });
    const u = linear(
      layerNorm(h, w.norm2.weight, w.norm2.bias, w.norm2.eps),
      w.fc1.weight,
      w.fc1.bias,
    );
    const output = fusedLinear(u, w.fc2.weight, w.fc2.bias, {
      geluInput: true,
      residual: h,
      rowScale: s1,
    }) as tf.Tensor3D;
    return r.probabilities ? { output, attention: r.probabilities } : { output };
  }) as TransformerBlockResult;
}

/** Whether the fused webgpu kernel takes this call (backend, features, buffer limits). */
export function fusableBlock(x: tf.Tensor, hidden: number, o: TransformerBlockOptions): boolean {
  if (!fusedOnWebgpu || o.returnAttention === true) return false;
  if (tf.getBackend() !== "webgpu" || !webgpuKernelsEnabled()) return false;
  const [b, n, d] = x.shape;
  if (d / o.numHeads > MAX_HEAD_DIM) return false;
  const limits = (
    tf.backend() as unknown as {
      device?: { limits: { maxBufferSize: number; maxStorageBufferBindingSize: number } };
    }
  ).device?.limits;
  if (!limits) return false;
  const m = b * n;
  const biggest = Math.max(m * 3 * d, m * hidden) * 4;
  const dims = { batch: b, n, d, hidden, m, half: halfActive() };
  // (The finishing buffer at its largest: every layer with a bias.)
  const biases = { hasQkvBias: true, hasProjBias: true, hasFc1Bias: true, hasFc2Bias: true };
  const sums = blockWeightGradients(dims, { ...biases, scaled: false, half: dims.half }).sums.total;
  const buffers = [workspaceLayout(dims).total, gradTempLayout(dims, o.numHeads).total, sums];
  return (
    Math.max(...buffers) * 4 <= limits.maxBufferSize &&
    biggest <= limits.maxStorageBufferBindingSize
  );
}

/**
 * The attributes of the fused block kernels for `w` on `x` (hidden: the MLP width), the weight
 * flags read from `w`: one place for {@link transformerBlock} and transformer-stack.ts.
 */
export function fusedBlockAttrs(
  x: tf.Tensor,
  w: TransformerBlockWeights,
  numHeads: number,
  hidden: number,
  { save, scaled }: { save: boolean; scaled: boolean },
): BlockAttrs {
  const [batch, n, d] = x.shape;
  return {
    numHeads,
    eps1: w.norm1.eps,
    eps2: w.norm2.eps,
    scale: (d / numHeads) ** -0.5,
    hasQkvBias: w.qkv.bias != null,
    hasProjBias: w.proj.bias != null,
    hasFc1Bias: w.fc1.bias != null,
    hasFc2Bias: w.fc2.bias != null,
    save,
    shape: [batch, n, d],
    hidden,
    scaled,
    half: halfActive(),
  };
}

/** `w`'s tensors under the fused block kernels' input names (absent biases left out). */
export function fusedBlockInputs(w: TransformerBlockWeights): Record<string, tf.Tensor> {
  const inputs: Record<string, tf.Tensor> = {
    ln1g: w.norm1.weight,
    ln1b: w.norm1.bias,
    qkvW: w.qkv.weight,
    projW: w.proj.weight,
    ln2g: w.norm2.weight,
    ln2b: w.norm2.bias,
    fc1W: w.fc1.weight,
    fc2W: w.fc2.weight,
  };
  if (w.qkv.bias) inputs.qkvB = w.qkv.bias;
  if (w.proj.bias) inputs.projB = w.proj.bias;
  if (w.fc1.bias) inputs.fc1B = w.fc1.bias;
  if (w.fc2.bias) inputs.fc2B = w.fc2.bias;
  return inputs;
}

/**
 * A pre-norm transformer block (timm/DINO `Block`):
 * `h = x + s0·proj(attn(qkv(LN1(x))))`, `y = h + s1·fc2(GELU(fc1(LN2(h))))`, with s0, s1 the
 * optional per-sample stochastic-depth factors. On webgpu (the package's kernels on, no attention
 * maps asked for) it is one tfjs kernel forward (5 GPU dispatches) and one backward (13); elsewhere
 * it is {@link portableTransformerBlock}. Differentiable in x and every weight.
 */
export function transformerBlock(
  x: tf.Tensor3D,
  weights: TransformerBlockWeights,
  options: TransformerBlockOptions,
): TransformerBlockResult {
  const hidden = checkBlockArgs(x, weights, options);
  if (!fusableBlock(x, hidden, options)) return portableTransformerBlock(x, weights, options);
  registerBlockKernels();
  const scales = options.dropScales ?? null;
  const engine = tf.engine() as unknown as { isTapeOn(): boolean };
  const attrs = fusedBlockAttrs(x, weights, options.numHeads, hidden, {
    save: engine.isTapeOn(),
    scaled: scales !== null,
  });
  const inputs: Record<string, tf.Tensor> = { x, ...fusedBlockInputs(weights) };
  if (scales) [inputs.s0, inputs.s1] = scales;
  const kernel = scales ? BLOCK_SCALED_KERNEL : BLOCK_KERNEL;
  // Saved for the backward: the workspace, then the inputs it reads (handles, no copies), except
  // the weights that are Variables: those go by reference (heldInputs).
  const names = savedInputNames(attrs);
  const held = holdVariables(attrs, names, inputs);
  const saved = names.filter((name) => !(name in held)).map((name) => inputs[name]);
  const outs = runKernelSaving(kernel, inputs, attrs, (o) => [o[1], ...saved]);
  // The workspace (when a tape records) stays alive through the tape's saved handle.
  if (outs.length > 1) outs[1].dispose();
  return { output: outs[0] as tf.Tensor3D };
}
