// PyTorch-layout helpers for parity tests: the fixtures through @sit/core's converters.
import type * as tf from "@tensorflow/tfjs";
import {
  type Module,
  type StateDict,
  conv2dWeightToTorch,
  convTranspose2dWeightToTorch,
  linearWeightToTorch,
  loadTorchStateDict,
} from "@sit/core";

/** Load the entries `prefix + name` of a PyTorch-layout dict into `module` (strict). */
export function loadFromTorch(module: Module, dict: StateDict, prefix = ""): void {
  const own: StateDict = {};
  for (const name of Object.keys(module.stateDict())) own[name] = dict[prefix + name];
  loadTorchStateDict(module, own);
}

/** A gradient of the parameter `name` of `module`, in PyTorch's layout (a new tensor). */
export function gradientToTorch(module: Module, name: string, g: tf.Tensor): tf.Tensor {
  const layout = new Map(module.namedTorchLayouts()).get(name);
  if (!layout) return g.clone();
  if (layout.kind === "linear") return linearWeightToTorch(g);
  if (layout.kind === "conv2d") return conv2dWeightToTorch(g, layout.torchShape);
  return convTranspose2dWeightToTorch(g, layout.torchShape);
}
