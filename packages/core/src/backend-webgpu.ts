import * as tf from "@tensorflow/tfjs";

// Starting tfjs's webgpu backend on `navigator.gpu`: the browser's own, or under Node the one that
// @sit/core/node installs from Dawn first (backend-webgpu-node.ts, a PrepareWebgpu).

/** @internal */
export interface GPULike {
  requestAdapter(
    opts?: unknown,
  ): Promise<{ info?: Record<string, string>; isFallbackAdapter?: boolean } | null>;
}

/** An adapter in one line, and whether it is a software rasteriser rather than a GPU. @internal */
export interface AdapterDescription {
  description: string;
  device: string;
  software: boolean;
}

/**
 * Make `navigator.gpu` exist where the runtime has none of its own; a one-line reason when it
 * cannot, or when the only adapter is a software one that is not allowed.
 * @internal
 */
export type PrepareWebgpu = (allowSoftware: boolean) => Promise<string | undefined>;

/** Describe an adapter in one line, and tell a software rasteriser from a GPU. @internal */
export function describeAdapter(adapter: {
  info?: Record<string, string>;
  isFallbackAdapter?: boolean;
}): AdapterDescription {
  const info = adapter.info ?? {};
  const description =
    [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ") ||
    "unknown adapter";
  const software =
    adapter.isFallbackAdapter === true ||
    /llvmpipe|lavapipe|swiftshader|software/i.test(description);
  return { description, device: info.device || description, software };
}

/** Why a software adapter was not used. @internal */
export function softwareReason(device: string): string {
  return `only a software adapter (${device}); set SIT_WEBGPU_SOFTWARE=1 or pass allowSoftwareAdapter to use it`;
}

/**
 * Start tfjs's webgpu backend on `navigator.gpu` (after `prepare` where the runtime has none of its
 * own). A software adapter (lavapipe, SwiftShader) is used only when allowed. Returns a one-line
 * reason otherwise.
 * @internal
 */
export async function startWebgpu(
  allowSoftware: boolean,
  provider: string,
  prepare?: PrepareWebgpu,
): Promise<{ provider: string; adapter: string } | string> {
  const g = globalThis as unknown as { navigator?: { gpu?: GPULike } };
  if (!g.navigator?.gpu) {
    if (!prepare)
      return isNode()
        ? "no navigator.gpu here: under Node, initBackend from @sit/core/node starts WebGPU through Dawn"
        : "this runtime has no WebGPU (navigator.gpu)";
    const reason = await prepare(allowSoftware);
    if (reason !== undefined) return reason;
  }
  const gpu = (globalThis as unknown as { navigator: { gpu: GPULike } }).navigator.gpu;
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return "no WebGPU adapter found";
  const found = describeAdapter(adapter);
  if (found.software && !allowSoftware) return softwareReason(found.device);
  // Loaded here, not on import: importing registers "webgpu" with tfjs, which must not happen
  // before initBackend (see backend-wasm.ts).
  try {
    await import("@tensorflow/tfjs-backend-webgpu");
  } catch (err) {
    return `@tensorflow/tfjs-backend-webgpu failed to load: ${(err as Error).message.split("\n")[0]}`;
  }
  requestOptionalFeatures(gpu);
  if (!(await tf.setBackend("webgpu"))) return "the webgpu backend did not start";
  return { provider, adapter: found.description };
}

/** Device features requested whenever the adapter offers them (tfjs asks only for its own). */
const OPTIONAL_FEATURES = ["shader-f16"] as const;

/**
 * Device limits raised to what the adapter offers (tfjs raises only its own): the BatchNorm kernel
 * of @sit/kernels updates running statistics in its forward's dispatch with 10 storage buffers,
 * where WebGPU's default is 8.
 */
const RAISED_LIMITS = ["maxStorageBuffersPerShaderStage"] as const;

interface AdapterWithDevice {
  features?: { has(name: string): boolean };
  limits?: Record<string, number>;
  requestDevice?: (desc?: {
    requiredFeatures?: unknown[];
    requiredLimits?: Record<string, number>;
  }) => Promise<unknown>;
}

/**
 * tfjs creates its device itself, requesting only `timestamp-query` and `bgra8unorm-storage`; a
 * WGSL shader that says `enable f16;` (the mixed-precision GEMMs of @sit/kernels) needs the device
 * to have `shader-f16`. So the adapters this `gpu` hands out ask for it too where they offer it,
 * and for the adapter's {@link RAISED_LIMITS}.
 * Idempotent; a device without the feature is what tfjs would have made.
 */
function requestOptionalFeatures(gpu: GPULike): void {
  const g = gpu as GPULike & { sitFeatures?: true };
  if (g.sitFeatures) return;
  const request = gpu.requestAdapter.bind(gpu);
  g.requestAdapter = async (opts?: unknown) => {
    const adapter = (await request(opts)) as (AdapterWithDevice & object) | null;
    const requestDevice = adapter?.requestDevice?.bind(adapter);
    if (adapter && requestDevice)
      adapter.requestDevice = (desc = {}) => {
        const wanted = OPTIONAL_FEATURES.filter((f) => adapter.features?.has(f));
        const features = [...(desc.requiredFeatures ?? []), ...wanted];
        const limits: Record<string, number> = { ...desc.requiredLimits };
        for (const name of RAISED_LIMITS) {
          const offered = adapter.limits?.[name];
          if (typeof offered === "number") limits[name] = offered;
        }
        return requestDevice({ ...desc, requiredFeatures: features, requiredLimits: limits });
      };
    return adapter as Awaited<ReturnType<GPULike["requestAdapter"]>>;
  };
  g.sitFeatures = true;
}

/** Whether this runs under Node, where the main entry's initBackend is the wrong one. */
function isNode(): boolean {
  return (
    typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions
      ?.node === "string"
  );
}
