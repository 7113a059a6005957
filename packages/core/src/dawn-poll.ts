// Node only (@sit/core/node). Dawn for Node (the `webgpu` package) learns that the GPU finished
// something (a buffer mapped for a read, `onSubmittedWorkDone`) by polling: while such an
// operation is pending, its native side calls `setImmediate` with a native callback that ticks
// the device and calls `setImmediate` again at once. That is a busy loop. Measured on a SiT step
// (ViT-Tiny/4, batch 2, lavapipe, 2 cores; docs/backends.md): ≈ 465,000 polls while the step's
// loss was read, one core at 100 % for the whole GPU part of the step, and ≈ 300 MB of
// short-lived JS objects per step, so a mark-compact GC every ≈ 2.6 s that landed inside a step's
// host part about one step in five (≈ 100 ms of main-thread CPU each). Spacing the re-polls by a
// timer of `intervalMs` leaves the core to the driver and the data pipeline (the lavapipe step got
// 5 % faster at 32 px) and adds at most `intervalMs` to each wait. Only Dawn's own re-polls are
// spaced: a native callback scheduled by native code run from the immediates queue (no JavaScript
// frame in between); every other setImmediate runs as before.

/** The environment variable that sets the spacing in milliseconds (0: Dawn's own busy loop). */
export const DAWN_POLL_ENV = "SIT_DAWN_POLL_MS";

/** Default spacing of Dawn's polls: Node's timers have 1 ms resolution. */
const DEFAULT_POLL_MS = 1;

type SetImmediate = (callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;

let installed: { original: SetImmediate; intervalMs: number } | null = null;

/** The spacing `SIT_DAWN_POLL_MS` asks for (default 1 ms), checked. */
export function dawnPollMs(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return DEFAULT_POLL_MS;
  const ms = Number(value);
  if (!(Number.isFinite(ms) && ms >= 0 && ms <= 1000))
    throw new Error(
      `${DAWN_POLL_ENV}: expected the spacing of Dawn's GPU polls in milliseconds, a number from 0 to 1000 (0: no spacing), got "${value}"`,
    );
  return ms;
}

const callSites = (_error: Error, frames: NodeJS.CallSite[]) => frames;

/** Whether the setImmediate call being made comes straight from native code run as an immediate. */
function calledByNativeImmediate(patched: SetImmediate): boolean {
  // The caller's frame as a call site, not as text: formatting a stack resolves file paths (and
  // source maps, under a loader that installs them), which costs more than the poll itself.
  const holder: { stack?: unknown } = {};
  const { prepareStackTrace, stackTraceLimit } = Error;
  Error.prepareStackTrace = callSites;
  Error.stackTraceLimit = 1;
  try {
    Error.captureStackTrace(holder, patched);
    const frames = holder.stack as { getFunctionName(): string | null }[] | undefined;
    // Node runs the immediates queue in `processImmediate` (node:internal/timers): it is the only
    // frame above when a native callback it ran calls setImmediate itself.
    return frames?.[0]?.getFunctionName() === "processImmediate";
  } finally {
    Error.prepareStackTrace = prepareStackTrace;
    Error.stackTraceLimit = stackTraceLimit;
  }
}

/** Whether `f` is a function without JavaScript source (native, or a bound builtin). */
export const isNativeFunction = (f: unknown): boolean =>
  typeof f === "function" && Function.prototype.toString.call(f).endsWith("{ [native code] }");

/**
 * Space Dawn's re-polls by `intervalMs` (see the note at the top of this file); 0 undoes it.
 * Installed once per process (a later call changes the spacing).
 */
export function spaceDawnPolls(intervalMs: number): void {
  if (!(Number.isFinite(intervalMs) && intervalMs >= 0))
    throw new Error(`spaceDawnPolls intervalMs: expected a number ≥ 0, got ${intervalMs}`);
  const g = globalThis as unknown as { setImmediate?: SetImmediate };
  if (typeof g.setImmediate !== "function") return;
  if (installed) {
    installed.intervalMs = intervalMs;
    return;
  }
  if (intervalMs === 0) return;
  const state = { original: g.setImmediate, intervalMs };
  const patched: SetImmediate = (callback, ...args) =>
    state.intervalMs > 0 && isNativeFunction(callback) && calledByNativeImmediate(patched)
      ? setTimeout(callback, state.intervalMs, ...args)
      : state.original(callback, ...args);
  installed = state;
  g.setImmediate = patched;
}
