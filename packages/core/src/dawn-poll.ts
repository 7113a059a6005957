// Node only (@sit/core/node). Dawn for Node (the `webgpu` package) learns that the GPU finished
// something (a buffer mapped for a read, `onSubmittedWorkDone`) by polling: its native side calls
// `setImmediate` with a native callback that ticks the device and calls `setImmediate` again at
// once (under lavapipe the loop never stops, see below). That is a busy loop. Measured on a SiT step
// (ViT-Tiny/4, batch 2, lavapipe, 2 cores; docs/backends.md): ≈ 465,000 polls while the step's
// loss was read, one core at 100 % for the whole GPU part of the step, and ≈ 300 MB of
// short-lived JS objects per step, so a mark-compact GC every ≈ 2.6 s that landed inside a step's
// host part about one step in five (≈ 100 ms of main-thread CPU each). Spacing the re-polls by a
// timer leaves the core to the driver and the data pipeline. Only Dawn's own re-polls are spaced:
// a native callback scheduled by native code run straight from Node's immediates or timers queue
// (no JavaScript frame in between); every other setImmediate runs as before.
//
// The spacing backs off as a wait goes on: `intervalMs` at first, then 1/32 of the time since the
// last call that starts a wait (a buffer's `mapAsync`, the queue's `onSubmittedWorkDone`), at most
// 16 ms. So the poll that sees the work done comes at most ≈ 3 % of the wait (or `intervalMs`)
// after it finished: a wait of 100 ms polls 1–3 ms apart. (Dawn's loop does not stop between
// waits, under lavapipe at least: every poll, the first after a step's encoding included, is
// scheduled from the immediates queue. So a wait's start is taken from the calls that start one.)
// A fixed 1 ms still made ≈ 11,000 polls and ≈ 15 MB of garbage (Dawn's and Node's per poll) in a
// 5 s lavapipe step; with the back-off, ≈ 440 polls and < 1 MB
// (tools/bench/results/lavapipe-2026-12-05-backoff/).

/** The environment variable that sets the spacing in milliseconds (0: Dawn's own busy loop). */
export const DAWN_POLL_ENV = "SIT_DAWN_POLL_MS";

/** Default spacing of Dawn's first re-polls of a wait: Node's timers have 1 ms resolution. */
const DEFAULT_POLL_MS = 1;
/** The spacing grows to this fraction of the time the wait has lasted… */
const BACKOFF_FRACTION = 1 / 32;
/** …up to this (or the minimum spacing, if that is larger). */
const MAX_POLL_MS = 16;

/**
 * The delay before a re-poll, `waitedMs` into a wait, with the minimum spacing `minMs`: `minMs`,
 * growing to 1/32 of the wait so far, at most 16 ms (or `minMs` where that is larger).
 */
export function pollDelayMs(minMs: number, waitedMs: number): number {
  return Math.min(Math.max(MAX_POLL_MS, minMs), Math.max(minMs, waitedMs * BACKOFF_FRACTION));
}

type SetImmediate = (callback: (...args: unknown[]) => void, ...args: unknown[]) => unknown;

interface Spacing {
  original: SetImmediate;
  intervalMs: number;
  /** When the last call that starts a wait was made (performance.now()). */
  waitStart: number;
}

/** The WebGPU calls whose results Dawn polls for: each starts a wait. */
const WAIT_STARTS = [
  ["GPUBuffer", "mapAsync"],
  ["GPUQueue", "onSubmittedWorkDone"],
] as const;

let installed: Spacing | null = null;

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

/**
 * Whether the setImmediate call being made comes straight from native code that Node's immediates
 * or timers queue ran: a re-poll (Dawn's callback, run as an immediate or by our timer).
 */
function calledByNativeCallback(patched: SetImmediate): boolean {
  // The caller's frame as a call site, not as text: formatting a stack resolves file paths (and
  // source maps, under a loader that installs them), which costs more than the poll itself.
  const holder: { stack?: unknown } = {};
  const { prepareStackTrace, stackTraceLimit } = Error;
  Error.prepareStackTrace = callSites;
  Error.stackTraceLimit = 1;
  try {
    Error.captureStackTrace(holder, patched);
    const frames = holder.stack as { getFunctionName(): string | null }[] | undefined;
    // Node runs the immediates queue in `processImmediate` and due timers in `listOnTimeout`
    // (node:internal/timers): the only frame above when a native callback either ran calls
    // setImmediate itself. (A native resolve run by a timer calls no setImmediate: the awaiting
    // code runs later, as a microtask, with frames of its own.)
    const caller = frames?.[0]?.getFunctionName();
    return caller === "processImmediate" || caller === "listOnTimeout";
  } finally {
    Error.prepareStackTrace = prepareStackTrace;
    Error.stackTraceLimit = stackTraceLimit;
  }
}

/** Whether `f` is a function without JavaScript source (native, or a bound builtin). */
export const isNativeFunction = (f: unknown): boolean =>
  typeof f === "function" && Function.prototype.toString.call(f).endsWith("{ [native code] }");

/**
 * Space Dawn's re-polls by at least `intervalMs`, backing off as a wait goes on (see the note at
 * the top of this file); 0 undoes it. `classes` are Dawn's WebGPU classes (the `webgpu` package's
 * `globals`): their `mapAsync` and `onSubmittedWorkDone` mark the start of a wait. Installed once
 * per process (a later call changes the spacing).
 */
export function spaceDawnPolls(intervalMs: number, classes: Record<string, unknown> = {}): void {
  if (!(Number.isFinite(intervalMs) && intervalMs >= 0))
    throw new Error(`spaceDawnPolls intervalMs: expected a number ≥ 0, got ${intervalMs}`);
  const g = globalThis as unknown as { setImmediate?: SetImmediate };
  if (typeof g.setImmediate !== "function") return;
  if (installed) {
    installed.intervalMs = intervalMs;
    return;
  }
  if (intervalMs === 0) return;
  const state: Spacing = { original: g.setImmediate, intervalMs, waitStart: performance.now() };
  for (const [name, method] of WAIT_STARTS) {
    const proto = (classes[name] as { prototype?: Record<string, unknown> } | undefined)?.prototype;
    const call = proto?.[method];
    if (!proto || typeof call !== "function") continue;
    proto[method] = function (this: unknown, ...args: unknown[]) {
      state.waitStart = performance.now();
      return call.apply(this, args);
    };
  }
  const patched: SetImmediate = (callback, ...args) =>
    state.intervalMs > 0 && isNativeFunction(callback) && calledByNativeCallback(patched)
      ? setTimeout(
          callback,
          pollDelayMs(state.intervalMs, performance.now() - state.waitStart),
          ...args,
        )
      : state.original(callback, ...args);
  installed = state;
  g.setImmediate = patched;
}
