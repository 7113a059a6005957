import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type * as tf from "@tensorflow/tfjs";
import type { SafetensorsFile } from "@sit/core";
import { loadSafetensors, readSafetensors } from "@sit/core/node";

/** The PyTorch reference fixtures, copied into the repository from the project's shared fixtures. */
export const FIXTURES_DIR = fileURLToPath(new URL("../fixtures/", import.meta.url));

export function fixturePath(name: string): string {
  return `${FIXTURES_DIR}${name}`;
}

/** A fixture's tensors as tfjs tensors (caller disposes) plus its metadata, JSON-decoded where possible. */
export function loadFixture(name: string): {
  tensors: Record<string, tf.Tensor>;
  metadata: Record<string, unknown>;
} {
  const { tensors, metadata } = loadSafetensors(fixturePath(name));
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    try {
      meta[k] = JSON.parse(v);
    } catch {
      meta[k] = v;
    }
  }
  return { tensors, metadata: meta };
}

/** A fixture's raw typed arrays (no tfjs). */
export function loadFixtureRaw(name: string): SafetensorsFile {
  return readSafetensors(fixturePath(name));
}

/** schedules.json: every step's value of the lr, wd and momentum schedules. */
export function loadSchedules(): Record<string, unknown> {
  return JSON.parse(readFileSync(fixturePath("schedules.json"), "utf8"));
}
