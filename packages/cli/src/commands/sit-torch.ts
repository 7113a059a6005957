import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { IOError, parseSafetensors, rawToTensor, serializeSafetensors } from "@sit/core";
import { writeFileAtomic } from "@sit/core/node";
import {
  SIT_TORCH_FORMAT,
  type SitTorchJson,
  createSiT,
  sitRecipeFromTorch,
  sitTorchState,
} from "@sit/recipes";
import { openCheckpoint } from "@sit/recipes/node";
import { listCheckpoints, writeCheckpoint } from "@sit/train/node";
import * as tf from "@tensorflow/tfjs";
import { startBackend } from "../backend";
import { type CliIO, UsageError, note } from "../io";

// The sit-torch folder: state.safetensors (tensors, PyTorch layouts) + state.json (everything
// else, and the SHA-256 of the tensors file so that a mismatched pair is refused). Both files are
// written atomically, the JSON last: a crash leaves no state.json that names other tensors.

/** File names inside a sit-torch folder. */
export const SIT_TORCH_FILES = { tensors: "state.safetensors", json: "state.json" } as const;

/** What {@link exportSitTorch} and {@link importSitTorch} did. */
export interface SitTorchResult {
  /** The folder (export) or checkpoint file (import) written. */
  path: string;
  step: number;
  epoch: number;
  /** Settings the SiT code's main.py cannot represent (export; empty: none). */
  differences: string[];
}

/**
 * `sit export --format sit-torch`: the whole SiT training state of a checkpoint (student,
 * teacher, AdamW moments and step, epoch, config as the SiT code's `args`) into folder `out`, for
 * tools/scale-out/to_torch.py. `worldSize` splits the batch into the per-process `batch_size`.
 */
export async function exportSitTorch(
  options: { checkpoint: string; out: string; worldSize?: number; backend?: string },
  io: CliIO,
): Promise<SitTorchResult> {
  await startBackend(options.backend, io, "cpu");
  if (!existsSync(resolve(options.checkpoint)))
    throw new UsageError(`--checkpoint: not found: ${options.checkpoint}`);
  const ckpt = await openCheckpoint(options.checkpoint);
  try {
    if (ckpt.recipe !== "sit")
      throw new UsageError(
        `--format sit-torch: the checkpoint is of recipe "${ckpt.recipe}"; only sit runs map onto the SiT code`,
      );
    const recipe = createSiT(ckpt.state.meta.config as Parameters<typeof createSiT>[0]);
    try {
      await recipe.loadState(ckpt.state);
      const { tensors, json } = sitTorchState(recipe, ckpt.progress, {
        ...(ckpt.state.meta.cli !== undefined ? { cli: ckpt.state.meta.cli } : {}),
        ...(options.worldSize !== undefined ? { worldSize: options.worldSize } : {}),
      });
      const dir = resolve(options.out);
      try {
        writeSitTorch(dir, tensors, json);
      } finally {
        tf.dispose(Object.values(tensors));
      }
      note(io, `[sit] exported step ${json.step} (epoch ${json.epoch}) as sit-torch to ${dir}`);
      for (const d of json.official_differences)
        io.err(
          `note: the SiT code's main.py differs: ${d} (tools/scale-out/train_ddp.py does not)\n`,
        );
      return {
        path: dir,
        step: json.step,
        epoch: json.epoch,
        differences: json.official_differences,
      };
    } finally {
      recipe.dispose();
    }
  } finally {
    ckpt.dispose();
  }
}

/** Write a sit-torch folder (tensors first, then the JSON that names their checksum). */
export function writeSitTorch(
  dir: string,
  tensors: Record<string, tf.Tensor>,
  json: SitTorchJson,
): void {
  const bytes = serializeSafetensors(tensors, { format: "pt", content: SIT_TORCH_FORMAT });
  writeFileAtomic(join(dir, SIT_TORCH_FILES.tensors), bytes);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  writeFileAtomic(
    join(dir, SIT_TORCH_FILES.json),
    `${JSON.stringify({ ...json, tensors_sha256: sha256 }, null, 1)}\n`,
  );
}

/** Read a sit-torch folder; a missing file or a tensors file that is not the one the JSON names throws. */
export function readSitTorch(dir: string): {
  tensors: Record<string, tf.Tensor>;
  json: SitTorchJson;
} {
  const paths = [SIT_TORCH_FILES.tensors, SIT_TORCH_FILES.json].map((f) => join(dir, f));
  for (const p of paths)
    if (!existsSync(p)) throw new IOError(`--from: ${p} not found (expected a sit-torch folder)`);
  const bytes = readFileSync(paths[0]);
  const json = JSON.parse(readFileSync(paths[1], "utf8")) as SitTorchJson & {
    tensors_sha256?: string;
  };
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (json.tensors_sha256 !== sha256)
    throw new IOError(
      `${paths[0]}: SHA-256 ${sha256} is not the ${JSON.stringify(json.tensors_sha256)} that ${paths[1]} names (files from two different writes?)`,
    );
  const file = parseSafetensors(
    new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length),
    paths[0],
  );
  const tensors: Record<string, tf.Tensor> = {};
  for (const [k, raw] of Object.entries(file.tensors)) tensors[k] = rawToTensor(raw);
  return { tensors, json };
}

/**
 * `sit import --from <sit-torch folder> --out <run folder>`: a sit-torch state (written by
 * tools/scale-out/from_torch.py from a checkpoint.pth) as a SiT.js checkpoint in
 * `<out>/checkpoints`, which `sit pretrain --out <out> --resume` continues and the evaluation
 * commands read. The run folder may be the one the state was exported from: the new checkpoint
 * must be newer than every checkpoint already there.
 */
export async function importSitTorch(
  options: { from: string; out: string; stepsPerEpoch?: number; backend?: string },
  io: CliIO,
): Promise<SitTorchResult> {
  await startBackend(options.backend, io, "cpu");
  const { tensors, json } = readSitTorch(resolve(options.from));
  try {
    const dir = join(resolve(options.out), "checkpoints");
    const newest = listCheckpoints(dir).pop();
    if (newest && newest.step >= json.step)
      throw new UsageError(
        `--out: ${dir} already holds step ${newest.step}, not older than the imported step ${json.step}; choose another --out`,
      );
    const { recipe, progress } = sitRecipeFromTorch(
      tensors,
      json,
      options.stepsPerEpoch !== undefined ? { stepsPerEpoch: options.stepsPerEpoch } : {},
    );
    try {
      const state = recipe.saveState();
      const cli = json.sitjs?.cli;
      const path = await writeCheckpoint(
        dir,
        recipe.name,
        progress,
        { tensors: state.tensors, meta: { ...state.meta, ...(cli !== undefined ? { cli } : {}) } },
        { versions: { "@tensorflow/tfjs": tf.version.tfjs, importedFrom: SIT_TORCH_FORMAT } },
      );
      for (const [k, t] of Object.entries(state.tensors)) if (k.startsWith("optim.")) t.dispose();
      note(io, `[sit] imported step ${progress.step} (epoch ${progress.epoch}) into ${path}`);
      return { path, step: progress.step, epoch: progress.epoch, differences: [] };
    } finally {
      recipe.dispose();
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
}
