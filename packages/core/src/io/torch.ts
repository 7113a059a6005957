import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkShape, describeValue, invalidArgument } from "../errors";
import type { LoadStateDictResult, Module, StateDict, TorchLayout } from "../nn/module";

// PyTorch keeps weights in the layouts its kernels want; we keep the ones tfjs's matMul wants.
// These functions are the only place where the two meet.

/** `Linear.weight`: PyTorch `[out, in]` → ours `[in, out]`. */
export function linearWeightFromTorch(w: tf.Tensor): tf.Tensor2D {
  if (w.rank !== 2) throw invalidArgument("linear weight", w, "a rank-2 tensor [out, in]");
  return tf.transpose(w as tf.Tensor2D);
}

/** `Linear.weight`: ours `[in, out]` → PyTorch `[out, in]`. */
export function linearWeightToTorch(w: tf.Tensor): tf.Tensor2D {
  if (w.rank !== 2) throw invalidArgument("linear weight", w, "a rank-2 tensor [in, out]");
  return tf.transpose(w as tf.Tensor2D);
}

/**
 * Patch-embedding `Conv2d.weight`: PyTorch `[D, C, kh, kw]` → ours `[kh·kw·C, D]`, rows in
 * (row, col, channel) order, i.e. `ours[(r·kw + c)·C + ch, d] = torch[d, ch, r, c]`. This is the
 * matrix that multiplies NHWC patches flattened row-major.
 */
export function conv2dWeightFromTorch(w: tf.Tensor): tf.Tensor2D {
  if (w.rank !== 4) throw invalidArgument("conv2d weight", w, "a rank-4 tensor [D, C, kh, kw]");
  const [d, c, kh, kw] = w.shape;
  return tf.tidy(() => tf.transpose(w, [2, 3, 1, 0]).reshape([kh * kw * c, d]) as tf.Tensor2D);
}

/** Inverse of {@link conv2dWeightFromTorch}: ours `[kh·kw·C, D]` → PyTorch `torchShape = [D, C, kh, kw]`. */
export function conv2dWeightToTorch(
  w: tf.Tensor,
  torchShape: readonly [number, number, number, number],
): tf.Tensor4D {
  const [d, c, kh, kw] = torchShape;
  checkShape("conv2d weight", w.shape, [kh * kw * c, d]);
  return tf.tidy(() => tf.transpose(w.reshape([kh, kw, c, d]), [3, 2, 0, 1]) as tf.Tensor4D);
}

/**
 * `ConvTranspose2d.weight` with kernel = stride (an unpatchify head): PyTorch `[D, C, kh, kw]`
 * (in, out, kh, kw) → ours `[D, kh·kw·C]`, columns in (row, col, channel) order, i.e.
 * `ours[d, (r·kw + c)·C + ch] = torch[d, ch, r, c]`.
 */
export function convTranspose2dWeightFromTorch(w: tf.Tensor): tf.Tensor2D {
  if (w.rank !== 4)
    throw invalidArgument("convTranspose2d weight", w, "a rank-4 tensor [D, C, kh, kw]");
  const [d, c, kh, kw] = w.shape;
  return tf.tidy(() => tf.transpose(w, [0, 2, 3, 1]).reshape([d, kh * kw * c]) as tf.Tensor2D);
}

/** Inverse of {@link convTranspose2dWeightFromTorch}: ours `[D, kh·kw·C]` → PyTorch `[D, C, kh, kw]`. */
export function convTranspose2dWeightToTorch(
  w: tf.Tensor,
  torchShape: readonly [number, number, number, number],
): tf.Tensor4D {
  const [d, c, kh, kw] = torchShape;
  checkShape("convTranspose2d weight", w.shape, [d, kh * kw * c]);
  return tf.tidy(() => tf.transpose(w.reshape([d, kh, kw, c]), [0, 3, 1, 2]) as tf.Tensor4D);
}

/** The PyTorch shape of a parameter whose own shape is `shape` and layout `layout`. */
export function torchShapeOf(shape: readonly number[], layout: TorchLayout | undefined): number[] {
  if (!layout) return [...shape];
  if (layout.kind === "linear") return [shape[1], shape[0]];
  return [...layout.torchShape];
}

/**
 * One tensor of a parameter whose PyTorch layout is `layout` (none: same layout), PyTorch's layout →
 * ours. Also what optimiser moments need: they have their parameter's shape. A new tensor.
 */
export function tensorFromTorch(t: tf.Tensor, layout: TorchLayout | undefined): tf.Tensor {
  if (!layout) return t.clone();
  if (layout.kind === "linear") return linearWeightFromTorch(t);
  if (layout.kind === "conv2d") return conv2dWeightFromTorch(t);
  return convTranspose2dWeightFromTorch(t);
}

/** Inverse of {@link tensorFromTorch}: our layout → PyTorch's. A new tensor. */
export function tensorToTorch(t: tf.Tensor, layout: TorchLayout | undefined): tf.Tensor {
  if (!layout) return t.clone();
  if (layout.kind === "linear") return linearWeightToTorch(t);
  if (layout.kind === "conv2d") return conv2dWeightToTorch(t, layout.torchShape);
  return convTranspose2dWeightToTorch(t, layout.torchShape);
}

/**
 * The module's parameters and buffers as a PyTorch state dict: same names, PyTorch layouts
 * (Linear `[out, in]`, Conv2d / ConvTranspose2d `[D, C, kh, kw]`). New tensors: the caller
 * disposes them (e.g. after `writeSafetensors`).
 */
export function toTorchStateDict(module: Module): StateDict {
  const layouts = new Map(module.namedTorchLayouts());
  const out: StateDict = {};
  for (const [name, t] of Object.entries(module.stateDict()))
    out[name] = tensorToTorch(t, layouts.get(name));
  return out;
}

/**
 * Load a PyTorch state dict (PyTorch layouts, e.g. read with `loadSafetensors` from a file exported
 * by PyTorch) into `module`, converting each tagged parameter to our layout. Mis-shaped entries
 * always throw a ShapeError naming every one (shapes reported in PyTorch's layout); with `strict`
 * (default true) missing or unexpected names throw as well. The dict's tensors are not disposed.
 */
export function loadTorchStateDict(
  module: Module,
  dict: StateDict,
  options: { strict?: boolean } = {},
): LoadStateDictResult {
  if (dict === null || typeof dict !== "object")
    throw invalidArgument("dict", dict, "an object mapping names to tensors");
  const layouts = new Map(module.namedTorchLayouts());
  const own = module.stateDict();
  const misShaped: string[] = [];
  for (const [name, v] of Object.entries(own)) {
    const t = dict[name];
    if (!t) continue;
    if (!(t instanceof tf.Tensor)) {
      misShaped.push(`${name} (expected a tensor, got ${describeValue(t)})`);
      continue;
    }
    const expected = torchShapeOf(v.shape, layouts.get(name));
    if (!tf.util.arraysEqual(t.shape, expected))
      misShaped.push(`${name} (expected PyTorch shape [${expected}], got [${t.shape}])`);
  }
  if (misShaped.length > 0)
    throw new ShapeError(
      `loadTorchStateDict: ${misShaped.length} mis-shaped entr${misShaped.length === 1 ? "y" : "ies"}: ${misShaped.join("; ")}`,
    );
  const converted: StateDict = {};
  for (const [name, t] of Object.entries(dict))
    converted[name] = name in own ? tensorFromTorch(t, layouts.get(name)) : t;
  try {
    return module.loadStateDict(converted, options);
  } finally {
    for (const [name, t] of Object.entries(converted)) if (name in own) t.dispose();
  }
}
