import { readFileSync } from "node:fs";
import os from "node:os";
import * as tf from "@tensorflow/tfjs";
import { startBackend } from "../backend";
import { moduleRequire } from "../here";
import type { CliIO } from "../io";

/** Packages whose versions `sit info` reports. */
const PACKAGES = [
  "@sit/cli",
  "@sit/core",
  "@sit/kernels",
  "@sit/vit",
  "@sit/decoder",
  "@sit/gmml",
  "@sit/losses",
  "@sit/momentum",
  "@sit/data",
  "@sit/eval",
  "@sit/train",
  "@sit/recipes",
  "@tensorflow/tfjs",
  "@tensorflow/tfjs-backend-wasm",
  "@tensorflow/tfjs-backend-webgpu",
  "@tensorflow/tfjs-node",
  "@tensorflow/tfjs-node-gpu",
  "webgpu",
];

/** What `sit info` reports. */
export interface InfoReport {
  backend: {
    name: string;
    provider: string;
    reason: string;
    adapter?: string;
    threads?: number;
    simd?: boolean;
    note?: string;
    skipped: { name: string; reason: string }[];
  };
  /** Installed versions (absent packages are left out). */
  versions: Record<string, string>;
  node: string;
  platform: string;
  cpu: { model: string; cores: number; availableParallelism: number };
  memory: { totalGiB: number; freeGiB: number };
  /** tfjs flags of interest on the chosen backend. */
  tfjs: { backend: string; numTensors: number };
}

function packageVersion(name: string): string | undefined {
  const req = moduleRequire();
  try {
    const path = req.resolve(`${name}/package.json`);
    return (JSON.parse(readFileSync(path, "utf8")) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** `sit info`: the backend the CLI would use (and why the others were skipped), versions and devices. */
export async function info(options: { backend?: string }, io: CliIO): Promise<InfoReport> {
  const b = await startBackend(options.backend, { ...io, quiet: true });
  const versions: Record<string, string> = {};
  for (const p of PACKAGES) {
    const v = packageVersion(p);
    if (v) versions[p] = v;
  }
  const cpus = os.cpus();
  return {
    backend: {
      name: b.name,
      provider: b.provider,
      reason: b.reason,
      ...(b.adapter ? { adapter: b.adapter } : {}),
      ...(b.threads !== undefined ? { threads: b.threads, simd: b.simd } : {}),
      ...(b.note ? { note: b.note } : {}),
      skipped: b.skipped,
    },
    versions,
    node: process.versions.node,
    platform: `${process.platform} ${process.arch} (${os.release()})`,
    cpu: {
      model: cpus[0]?.model?.trim() ?? "unknown",
      cores: cpus.length,
      availableParallelism:
        typeof os.availableParallelism === "function" ? os.availableParallelism() : cpus.length,
    },
    memory: {
      totalGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      freeGiB: Math.round((os.freemem() / 2 ** 30) * 10) / 10,
    },
    tfjs: { backend: tf.getBackend(), numTensors: tf.memory().numTensors },
  };
}

/** The report as readable lines. */
export function formatInfo(r: InfoReport): string {
  const lines = [
    `backend   ${r.backend.name} via ${r.backend.provider} (${r.backend.reason})${r.backend.adapter ? ` on ${r.backend.adapter}` : ""}${r.backend.threads !== undefined ? `, ${r.backend.threads} thread(s)${r.backend.simd ? ", SIMD" : ""}` : ""}`,
    ...(r.backend.note ? [`          note: ${r.backend.note}`] : []),
    ...r.backend.skipped.map((s) => `skipped   ${s.name}: ${s.reason}`),
    `node      ${r.node} on ${r.platform}`,
    `cpu       ${r.cpu.model}, ${r.cpu.cores} cores (${r.cpu.availableParallelism} available)`,
    `memory    ${r.memory.totalGiB} GiB total, ${r.memory.freeGiB} GiB free`,
    "versions",
    ...Object.entries(r.versions).map(([k, v]) => `  ${k.padEnd(32)} ${v}`),
  ];
  return `${lines.join("\n")}\n`;
}
