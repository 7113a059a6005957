import type * as tf from "@tensorflow/tfjs";
import { type ParamGroupSpec, checkNumber } from "@sit/core";

/**
 * Which fine-tuning parameters get no weight decay: 1-D tensors (biases, norm scales), names
 * ending in `.bias`, and the `cls_token` / `pos_embed` tokens (timm's `no_weight_decay()` for
 * ViTs, which DeiT fine-tuning uses).
 */
export function fineTuneNoDecay(name: string, param: tf.Variable): boolean {
  return (
    param.rank <= 1 ||
    name.endsWith(".bias") ||
    name === "cls_token" ||
    name === "pos_embed" ||
    name.endsWith(".cls_token") ||
    name.endsWith(".pos_embed")
  );
}

/**
 * Layer index of a ViT parameter for layer-wise learning-rate decay (BEiT/MAE convention):
 * `cls_token`, `pos_embed`, `patch_embed.*` → 0; `blocks.i.*` → i + 1; everything else (final
 * norm, head) → depth + 1.
 */
export function vitLayerId(name: string, depth: number): number {
  if (name === "cls_token" || name === "pos_embed" || name.startsWith("patch_embed.")) return 0;
  const m = /^blocks\.(\d+)\./.exec(name);
  if (m) return Number(m[1]) + 1;
  return depth + 1;
}

/**
 * AdamW parameter groups for fine-tuning: one group per (layer, decay / no-decay), with
 * `lrScale = layerDecay^(depth + 1 − layer)` — the head and final norm learn at the full rate,
 * block i at `layerDecay^(depth − i)`, the embeddings at `layerDecay^(depth + 1)`. With
 * `layerDecay = 1` every scale is 1. `params` are `[name, Variable]` with backbone names as timm's
 * (`blocks.3.attn.qkv.weight`); only trainable ones are included.
 */
export function layerDecayGroups(
  params: [string, tf.Variable][],
  options: { depth: number; layerDecay: number; weightDecay: number },
): ParamGroupSpec[] {
  const depth = checkNumber("depth", options.depth, { integer: true, min: 1 });
  const decay = checkNumber("layerDecay", options.layerDecay, {
    min: 0,
    minExclusive: true,
    max: 1,
  });
  const wd = checkNumber("weightDecay", options.weightDecay, { min: 0 });
  const groups = new Map<string, ParamGroupSpec>();
  for (const [name, p] of params) {
    if (!p.trainable) continue;
    const layer = vitLayerId(name, depth);
    const noDecay = fineTuneNoDecay(name, p);
    const key = `layer${layer}.${noDecay ? "no_decay" : "decay"}`;
    let g = groups.get(key);
    if (!g) {
      g = {
        name: key,
        params: [],
        weightDecay: noDecay ? 0 : wd,
        lrScale: decay ** (depth + 1 - layer),
      };
      groups.set(key, g);
    }
    g.params.push([name, p]);
  }
  return [...groups.values()];
}
