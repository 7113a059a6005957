// Test support (not exported from the package): PyTorch ↔ ours layout conversion of a module's
// tagged parameters, written from the layout definitions in @sit/core's `TorchLayout`.
import * as tf from "@tensorflow/tfjs";
import type { Module, StateDict, TorchLayout } from "@sit/core";

/** One tensor from PyTorch's layout to ours (a new tensor). */
export function fromTorchLayout(t: tf.Tensor, layout: TorchLayout | undefined): tf.Tensor {
  return tf.tidy(() => {
    if (!layout) return t.clone();
    if (layout.kind === "linear") return tf.transpose(t);
    const [d, c, kh, kw] = t.shape;
    // conv2d: ours[(r·kw + q)·C + ch, d] = torch[d, ch, r, q]
    if (layout.kind === "conv2d") return tf.transpose(t, [2, 3, 1, 0]).reshape([kh * kw * c, d]);
    // convTranspose2d: ours[d, (r·kw + q)·C + ch] = torch[d, ch, r, q]
    return tf.transpose(t, [0, 2, 3, 1]).reshape([d, kh * kw * c]);
  });
}

/** One tensor from our layout to PyTorch's (a new tensor). */
export function toTorchLayout(t: tf.Tensor, layout: TorchLayout | undefined): tf.Tensor {
  return tf.tidy(() => {
    if (!layout) return t.clone();
    if (layout.kind === "linear") return tf.transpose(t);
    const [d, c, kh, kw] = layout.torchShape;
    if (layout.kind === "conv2d") return tf.transpose(t.reshape([kh, kw, c, d]), [3, 2, 0, 1]);
    return tf.transpose(t.reshape([d, kh, kw, c]), [0, 3, 1, 2]);
  });
}

/** `dict` (PyTorch layouts, names as `module`'s, optional `prefix` on the dict side) in our layouts. */
export function convertFromTorch(module: Module, dict: StateDict, prefix = ""): StateDict {
  const layouts = new Map(module.namedTorchLayouts());
  const out: StateDict = {};
  for (const name of Object.keys(module.stateDict())) {
    const t = dict[prefix + name];
    if (!t) throw new Error(`fixture lacks ${prefix + name}`);
    out[name] = fromTorchLayout(t, layouts.get(name));
  }
  return out;
}

/** Load `dict` (PyTorch layouts) into `module` strictly. */
export function loadFromTorch(module: Module, dict: StateDict, prefix = ""): void {
  const converted = convertFromTorch(module, dict, prefix);
  module.loadStateDict(converted);
  tf.dispose(Object.values(converted));
}

/** The module's state in PyTorch layouts (new tensors). */
export function exportToTorch(module: Module): StateDict {
  const layouts = new Map(module.namedTorchLayouts());
  const out: StateDict = {};
  for (const [name, t] of Object.entries(module.stateDict()))
    out[name] = toTorchLayout(t, layouts.get(name));
  return out;
}
