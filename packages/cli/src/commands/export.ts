import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { toTorchStateDict } from "@sit/core";
import { writeSafetensors } from "@sit/core/node";
import { SitNetwork } from "@sit/recipes";
import * as tf from "@tensorflow/tfjs";
import { startBackend } from "../backend";
import { type CliIO, UsageError, note } from "../io";
import { loadModel } from "../model";
import { networkOf } from "../recipes";

/** Options of {@link exportWeights}. */
export interface ExportOptions {
  /** Checkpoint file or run folder. */
  checkpoint: string;
  /** The safetensors file to write. */
  out: string;
  weights: "student" | "teacher";
  /**
   * `timm`: the ViT backbone alone with timm's names (`cls_token`, `pos_embed`,
   * `patch_embed.proj.weight`, `blocks.0.attn.qkv.weight`, …), loadable into a timm
   * `VisionTransformer` without its classifier. `sit`: the whole SiT network with the SiT code's
   * names (backbone at the top level, `cls_head.*`, `rec_head.*`).
   */
  format: "timm" | "sit";
  backend?: string;
}

/** What {@link exportWeights} wrote. */
export interface ExportResult {
  path: string;
  /** Tensor names written, sorted. */
  names: string[];
  parameters: number;
  step: number;
}

/**
 * `sit export`: weights of a checkpoint as a safetensors file in PyTorch layouts (Linear
 * `[out, in]`, patch-embedding Conv2d `[D, C, p, p]`) and timm/SiT names, with the architecture in
 * the file's metadata — `torch.load`-free and loadable with `safetensors.torch.load_file` into a
 * timm ViT (`strict=False` for the missing classifier head).
 */
export async function exportWeights(options: ExportOptions, io: CliIO): Promise<ExportResult> {
  await startBackend(options.backend, io, "cpu");
  const model = await loadModel(options.checkpoint);
  try {
    const { network, backbone } = networkOf(model.recipe, options.weights);
    let dict: Record<string, tf.Tensor>;
    if (options.format === "timm") dict = toTorchStateDict(backbone);
    else if (network instanceof SitNetwork) dict = SitNetwork.toSitNames(toTorchStateDict(network));
    else
      throw new UsageError(
        `--format sit: recipe "${model.recipe.name}" has no SiT network (use --format timm for its backbone)`,
      );
    const names = Object.keys(dict).sort();
    // PyTorch layout [hidden, D]: the first block's MLP width gives the ratio.
    const fc1 = dict["blocks.0.mlp.fc1.weight"];
    const mlpRatio = fc1 ? fc1.shape[0] / backbone.embedDim : 4;
    const parameters = names.reduce((n, k) => n + dict[k].size, 0);
    const path = resolve(options.out);
    mkdirSync(dirname(path), { recursive: true });
    writeSafetensors(path, dict, {
      format: "pt",
      producer: "@sit/cli",
      recipe: model.recipe.name,
      weights: options.weights,
      names: options.format,
      step: String(model.step),
      architecture: JSON.stringify({
        img_size: backbone.imgSize,
        patch_size: backbone.patchSize,
        in_chans: backbone.inChans,
        embed_dim: backbone.embedDim,
        depth: backbone.depth,
        num_heads: backbone.numHeads,
        mlp_ratio: mlpRatio,
        qkv_bias: true,
        layer_norm_eps: 1e-6,
      }),
    });
    tf.dispose(Object.values(dict));
    note(
      io,
      `[sit] exported ${names.length} tensors (${parameters} values, ${options.format} names) to ${path}`,
    );
    return { path, names, parameters, step: model.step };
  } finally {
    model.recipe.dispose();
  }
}
