// Helpers for the CLI's tests (not exported from the package).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "./cli";
import type { CliIO } from "./io";

/** Output captured from one `runCli` call. */
export interface Captured {
  code: number;
  out: string;
  err: string;
}

/** Run the CLI with captured output. */
export async function sit(...argv: string[]): Promise<Captured> {
  let out = "";
  let err = "";
  const io: CliIO = {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    progressStream: {
      write: (t: string) => {
        err += t;
        return true;
      },
      isTTY: false,
    },
  };
  const code = await runCli(argv, io);
  return { code, out, err };
}

/** A fresh temporary folder. */
export function tempDir(prefix = "sit-cli-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A tiny SiT pretraining config on the bundled Fashion-MNIST subset (64 images, 1 channel,
 * ViT D 16 / depth 2 / patch 7 at 28 px, projection 32 → 16, batch 16): 4 steps per epoch, a few
 * seconds on the cpu backend.
 */
export function tinyConfig(
  out: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    recipe: "sit",
    backend: "cpu",
    out,
    data: { dataset: "fashion-mnist-bundled", channels: 1, normalize: "dataset", limit: 64 },
    config: {
      backbone: { imgSize: 28, patchSize: 7, embedDim: 16, depth: 2, numHeads: 2 },
      projection: { hidden: 32, outDim: 16 },
      optim: { batchSize: 16, epochs: 2, warmupEpochs: 0, baseLr: 0.02 },
      lambda: 5,
      seed: 3,
    },
    train: { tensorboard: true, keepLast: 2 },
    ...overrides,
  };
}

/** Write a config object as JSON and return the path. */
export function writeConfig(
  dir: string,
  config: Record<string, unknown>,
  name = "config.json",
): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}
