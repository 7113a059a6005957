// Checkpoints of page runs: the bytes of the file `sit pretrain` writes (@sit/train's
// serializeTrainCheckpoint), with the CLI's run description under `meta.cli`, so that
// `sit pretrain --resume`, `sit knn`, `sit reconstruct`… take a page checkpoint as their own, and
// the page opens theirs (parseTrainCheckpoint).
import * as tf from "@tensorflow/tfjs";
import {
  type LoadedCheckpoint,
  checkpointFileName,
  parseTrainCheckpoint,
  serializeTrainCheckpoint,
} from "@sit/train";
import type { PretrainConfigJson } from "./protocol";
import { type PageRunDescription, describePageRun } from "./run-config";
import type { TrainingSession } from "./session";

/** The session's full state as checkpoint bytes, its file name, and the config that continues it. */
export async function encodePageCheckpoint(
  s: TrainingSession,
): Promise<{ name: string; bytes: Uint8Array; config: PretrainConfigJson }> {
  const state = await s.recipe.saveState();
  try {
    const bytes = serializeTrainCheckpoint(
      {
        recipe: s.recipe.name,
        progress: { ...s.progress },
        versions: { "@tensorflow/tfjs": tf.version.tfjs, backend: tf.getBackend() },
      },
      { tensors: state.tensors, meta: { ...state.meta, cli: describePageRun(s.config) } },
    );
    return { name: checkpointFileName(s.progress.step), bytes, config: s.config };
  } finally {
    // Parameters are the recipe's live variables; the rest (optimiser moments) are copies handed over.
    for (const t of Object.values(state.tensors)) if (!(t instanceof tf.Variable)) t.dispose();
  }
}

/** Read checkpoint bytes (a page's or `sit pretrain`'s); throws an IOError naming `name` when they are not one. */
export function decodePageCheckpoint(bytes: Uint8Array, name: string): LoadedCheckpoint {
  const loaded = parseTrainCheckpoint(bytes, name);
  if (loaded.recipe !== "sit") {
    loaded.dispose();
    throw new Error(
      `${name}: a checkpoint of recipe "${loaded.recipe}"; the playground trains SiT ("sit")`,
    );
  }
  return loaded;
}

/** The `sit pretrain` config that a checkpoint's run was made with (from its `meta.cli`). */
export function checkpointConfig(c: LoadedCheckpoint): PretrainConfigJson {
  const cli = c.state.meta.cli as PageRunDescription | undefined;
  if (!cli)
    throw new Error(
      `${c.path}: no run description (meta.cli): only checkpoints of sit pretrain or of this page open here`,
    );
  // A SiT run's recipe config (the recipe checked it when the run was made).
  return {
    recipe: "sit",
    data: cli.data,
    config: cli.recipeConfig as PretrainConfigJson["config"],
  };
}
