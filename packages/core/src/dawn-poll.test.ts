import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DAWN_POLL_ENV, dawnPollMs, pollDelayMs, spaceDawnPolls } from "./dawn-poll";

/**
 * What Dawn's native side does while a GPU operation is pending, for `ms`: a native callback that,
 * run as an immediate, calls setImmediate with itself straight from native code. A bound
 * Reflect.apply is such a function (no JavaScript frame of its own): its argument list holds the
 * callback and the list itself, so each run calls `setImmediate(poll, list)` again. (The list's
 * first element is a getter that counts the runs; it has returned before setImmediate is called.)
 * Returns the delays its re-polls asked of a wrapped setTimeout, and how many times it ran.
 */
async function nativePollLoop(ms: number): Promise<{ delays: number[]; runs: number }> {
  const realSetTimeout = globalThis.setTimeout;
  const delays: number[] = [];
  globalThis.setTimeout = ((...a: Parameters<typeof setTimeout>) => {
    delays.push(a[1] ?? 0);
    return realSetTimeout(...a);
  }) as typeof setTimeout;
  let runs = 0;
  let callback: unknown = Reflect.apply.bind(null, globalThis.setImmediate, null);
  const poll = callback;
  const list = {
    length: 2,
    get 0() {
      runs++;
      return callback;
    },
    get 1() {
      return list;
    },
  };
  try {
    globalThis.setImmediate(poll as never, list);
    await new Promise((r) => realSetTimeout(r, ms));
  } finally {
    // The next run calls Math.max(list): the loop ends.
    callback = Math.max;
    await new Promise((r) => realSetTimeout(r, 20));
    globalThis.setTimeout = realSetTimeout;
  }
  return { delays, runs };
}

/** Dawn's classes as spaceDawnPolls sees them: a buffer whose mapAsync starts a wait. */
const waits = { mapAsync: 0 };
class FakeGpuBuffer {
  mapAsync(mode: number): number {
    waits.mapAsync++;
    return mode;
  }
}

describe("spacing Dawn's GPU polls (SIT_DAWN_POLL_MS)", () => {
  beforeAll(() => {
    spaceDawnPolls(5, { GPUBuffer: FakeGpuBuffer });
  });
  afterAll(() => {
    spaceDawnPolls(0);
  });

  it("reads the spacing from the environment: default 1 ms, 0 turns it off", () => {
    expect(DAWN_POLL_ENV).toBe("SIT_DAWN_POLL_MS");
    expect(dawnPollMs(undefined)).toBe(1);
    expect(dawnPollMs(" ")).toBe(1);
    expect(dawnPollMs("0")).toBe(0);
    expect(dawnPollMs("2.5")).toBe(2.5);
    for (const bad of ["-1", "fast", "1e9"])
      expect(() => dawnPollMs(bad)).toThrow(
        new RegExp(`SIT_DAWN_POLL_MS: expected .* from 0 to 1000 .*got "${bad}"`),
      );
    expect(() => spaceDawnPolls(Number.NaN)).toThrow(/intervalMs: expected a number ≥ 0, got NaN/);
  });

  it("backs off from the minimum to 1/32 of the wait so far, at most 16 ms", () => {
    expect(pollDelayMs(1, 0)).toBe(1);
    expect(pollDelayMs(1, 20)).toBe(1);
    expect(pollDelayMs(1, 320)).toBe(10);
    expect(pollDelayMs(1, 10_000)).toBe(16);
    expect(pollDelayMs(0.5, 0)).toBe(0.5);
    // A minimum above the cap is kept.
    expect(pollDelayMs(50, 0)).toBe(50);
    expect(pollDelayMs(50, 10_000)).toBe(50);
  });

  it("spaces a native re-poll loop, from the immediates and the timers queue alike", async () => {
    spaceDawnPolls(5);
    new FakeGpuBuffer().mapAsync(1);
    const spaced = await nativePollLoop(100);
    spaceDawnPolls(0);
    const busy = await nativePollLoop(20);
    spaceDawnPolls(5);
    // Every re-poll is a timer of ≥ 5 ms: ≈ 20 in 100 ms (fewer when timers run late), and one
    // run by a timer re-polls through a timer again: the loop ran once per timer (and at its end).
    expect(spaced.delays.length).toBeGreaterThan(2);
    expect(spaced.delays.length).toBeLessThan(30);
    expect(spaced.runs).toBeLessThanOrEqual(spaced.delays.length + 2);
    expect(Math.min(...spaced.delays)).toBe(5);
    // Off: no timers, and the busy loop ran far more often than once a millisecond.
    expect(busy.delays).toEqual([]);
    expect(busy.runs).toBeGreaterThan(100);
  });

  it("backs off as a wait goes on, and starts over at a call that starts a wait", async () => {
    spaceDawnPolls(1);
    const calls = waits.mapAsync;
    // The wrapped method still runs Dawn's (here the fake's) and returns its result.
    expect(new FakeGpuBuffer().mapAsync(7)).toBe(7);
    expect(waits.mapAsync).toBe(calls + 1);
    const { delays: long } = await nativePollLoop(400);
    // 1 ms at first (< 4 ms: a loaded machine may run the first poll late); 400 ms into the wait,
    // 1/32 of it (≈ 12 ms).
    expect(long[0]).toBeLessThan(4);
    expect(Math.max(...long)).toBeGreaterThan(6);
    expect(Math.max(...long)).toBeLessThanOrEqual(16);
    // Fewer polls than a fixed 1 ms would make (≈ 400).
    expect(long.length).toBeLessThan(200);
    new FakeGpuBuffer().mapAsync(1);
    const { delays: again } = await nativePollLoop(10);
    // Without the restart, ≈ 13 ms (1/32 of the ≈ 420 ms since the first mapAsync).
    expect(again[0]).toBeLessThan(4);
    spaceDawnPolls(5);
  });

  it("leaves JavaScript immediates and native functions passed from JavaScript alone", async () => {
    // A JavaScript callback re-scheduling itself, and a native resolve function passed from
    // JavaScript, still run as immediates: 300 rounds, then 100 awaited resolves, take far less
    // than 100 × 5 ms.
    const t0 = performance.now();
    let rounds = 0;
    await new Promise<void>((resolve) => {
      const again = () => (++rounds < 300 ? setImmediate(again) : resolve());
      setImmediate(again);
    });
    for (let i = 0; i < 100; i++) await new Promise((r) => setImmediate(r));
    // And a native resolve run by a timer: its awaiting code runs as a microtask, not spaced.
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0));
    expect(performance.now() - t0).toBeLessThan(250);
  });
});
