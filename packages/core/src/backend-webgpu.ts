import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs";
import { resolveOptional, tryRequire } from "./backend-require";

const requireHere = createRequire(import.meta.url);

interface GPULike {
  requestAdapter(
    opts?: unknown,
  ): Promise<{ info?: Record<string, string>; isFallbackAdapter?: boolean } | null>;
}

/** What the probe saw: the adapter Dawn would give, or why there is none. */
type Probe = { description: string; device: string; software: boolean } | string;

/** Describe an adapter in one line, and tell a software rasteriser from a GPU. */
function describeAdapter(adapter: {
  info?: Record<string, string>;
  isFallbackAdapter?: boolean;
}): Exclude<Probe, string> {
  const info = adapter.info ?? {};
  const description =
    [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ") ||
    "unknown adapter";
  const software =
    adapter.isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader|software/i.test(description);
  return { description, device: info.device || description, software };
}

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
 * Start tfjs's webgpu backend: in the browser on `navigator.gpu`; under Node through Dawn (the
 * `webgpu` package), after a probe in a child process has found an adapter it may use. A software
 * adapter (lavapipe, SwiftShader) is used only when allowed. Returns a one-line reason otherwise.
 */
export async function startWebgpu(
  allowSoftware: boolean,
): Promise<{ provider: string; adapter: string } | string> {
  const g = globalThis as unknown as { navigator?: { gpu?: GPULike } };
  if (!g.navigator?.gpu) {
    const dawnPath = resolveOptional("webgpu");
    if (!dawnPath) return "webgpu is not installed (Dawn for Node)";
    if (!resolveOptional("@tensorflow/tfjs-backend-webgpu"))
      return "@tensorflow/tfjs-backend-webgpu is not installed";
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
    const gpu = create([]);
    if (g.navigator) Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true });
    else
      Object.defineProperty(globalThis, "navigator", {
        value: { gpu },
        configurable: true,
        writable: true,
      });
  }
  const gpu = (globalThis as unknown as { navigator: { gpu: GPULike } }).navigator.gpu;
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return "no WebGPU adapter found";
  const found = describeAdapter(adapter);
  if (found.software && !allowSoftware) return softwareReason(found.device);
  const backend = tryRequire("@tensorflow/tfjs-backend-webgpu");
  if (!backend.ok) return backend.reason;
  if (!(await tf.setBackend("webgpu"))) return "the webgpu backend did not start";
  return {
    provider: "webgpu (Dawn) + @tensorflow/tfjs-backend-webgpu",
    adapter: found.description,
  };
}

function softwareReason(device: string): string {
  return `only a software adapter (${device}); set SIT_WEBGPU_SOFTWARE=1 or pass allowSoftwareAdapter to use it`;
}
