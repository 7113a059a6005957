import { createRequire } from "node:module";
import { type GPULike, describeAdapter, softwareReason } from "@sit/core";
import { resolveOptional, tryRequire } from "./backend-require";
import { DAWN_POLL_ENV, dawnPollMs, spaceDawnPolls } from "./dawn-poll";

// Node only (@sit/core/node): WebGPU through Dawn (the `webgpu` package), which Node lacks.

const requireHere = createRequire(import.meta.url);

/** What the probe saw: the adapter Dawn would give, or why there is none. */
type Probe = ReturnType<typeof describeAdapter> | string;

// Runs in a child process: Dawn and the Vulkan loader print warnings (XDG_RUNTIME_DIR, dynamic
// indexing, artificially reduced limits) straight to file descriptor 2, which Node cannot
// redirect in-process. Probing there keeps that chatter out of the terminal whenever WebGPU is
// skipped; it is printed only when WebGPU is really chosen.
const PROBE = `
const out = (v) => { process.stdout.write(JSON.stringify(v)); process.exit(0); };
try {
  const gpu = require(process.argv[1]).create([]);
  gpu.requestAdapter({ powerPreference: "high-performance" }).then(
    (a) => out(a ? { info: Object.fromEntries(["vendor", "architecture", "device", "description"].map((k) => [k, a.info?.[k] ?? ""])), isFallbackAdapter: a.isFallbackAdapter === true } : { none: true }),
    (e) => out({ error: String(e?.message ?? e).split("\\n")[0] }),
  );
} catch (e) {
  out({ error: String(e?.message ?? e).split("\\n")[0] });
}`;

/** Ask Dawn, in a child process, which adapter it would give. */
async function probeAdapter(dawnPath: string): Promise<Probe> {
  const { execFile } = requireHere("node:child_process") as typeof import("node:child_process");
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["-e", PROBE, dawnPath],
      { timeout: 20_000, encoding: "utf8" },
      (err, stdout) => {
        let parsed: { none?: true; error?: string; info?: Record<string, string> } | undefined;
        try {
          parsed = JSON.parse(stdout);
        } catch {
          parsed = undefined;
        }
        if (!parsed)
          resolve(`the WebGPU probe failed (${err ? err.message.split("\n")[0] : "no answer"})`);
        else if (parsed.error) resolve(`Dawn failed: ${parsed.error}`);
        else if (parsed.none) resolve("no WebGPU adapter found");
        else resolve(describeAdapter(parsed as Parameters<typeof describeAdapter>[0]));
      },
    );
  });
}

/**
 * Dawn's `create()` flags for `SIT_DAWN_TOGGLES`: comma-separated Dawn toggle names to enable,
 * or to disable with a leading `-` (e.g. `vulkan_enable_f16_on_nvidia`: Dawn offers `shader-f16`
 * on NVIDIA's Vulkan driver only with it, which mixed precision needs; `-timestamp_quantization`:
 * full-resolution GPU timestamps for a profile). Empty or unset: no flags. Names are checked,
 * since Dawn ignores an unknown toggle with only a warning on stderr.
 */
export function dawnFlags(value: string | undefined): string[] {
  const names = (value ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  const enable: string[] = [];
  const disable: string[] = [];
  for (const entry of names) {
    const name = entry.startsWith("-") ? entry.slice(1) : entry;
    if (!/^[a-z0-9_]+$/.test(name))
      throw new Error(
        `SIT_DAWN_TOGGLES: expected comma-separated Dawn toggle names (lower-case letters, digits, _; a leading - disables one), got "${entry}" in "${value}"`,
      );
    (entry.startsWith("-") ? disable : enable).push(name);
  }
  return [
    ...(enable.length > 0 ? [`enable-dawn-features=${enable.join(",")}`] : []),
    ...(disable.length > 0 ? [`disable-dawn-features=${disable.join(",")}`] : []),
  ];
}

/**
 * Install Dawn as `navigator.gpu`, after a probe in a child process has found an adapter it may
 * use (a software one only when allowed), with its GPU polls spaced by `SIT_DAWN_POLL_MS`
 * (dawn-poll.ts). Returns a one-line reason otherwise.
 */
export async function prepareDawn(allowSoftware: boolean): Promise<string | undefined> {
  const dawnPath = resolveOptional("webgpu");
  if (!dawnPath) return "webgpu is not installed (Dawn for Node)";
  const probe = await probeAdapter(dawnPath);
  if (typeof probe === "string") return probe;
  if (probe.software && !allowSoftware) return softwareReason(probe.device);
  const dawn = tryRequire("webgpu");
  if (!dawn.ok) return `${dawn.reason} (Dawn for Node)`;
  const { create, globals } = dawn.mod as {
    create: (flags: string[]) => GPULike;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, globals);
  const gpu = create(dawnFlags(process.env.SIT_DAWN_TOGGLES));
  // Dawn waits for the GPU in a busy loop of setImmediate calls: spaced out (dawn-poll.ts).
  spaceDawnPolls(dawnPollMs(process.env[DAWN_POLL_ENV]), globals);
  const g = globalThis as unknown as { navigator?: { gpu?: GPULike } };
  if (g.navigator) Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true });
  else
    Object.defineProperty(globalThis, "navigator", {
      value: { gpu },
      configurable: true,
      writable: true,
    });
  return undefined;
}
