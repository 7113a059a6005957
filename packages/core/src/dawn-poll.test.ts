import { afterAll, describe, expect, it } from "vitest";
import { DAWN_POLL_ENV, dawnPollMs, spaceDawnPolls } from "./dawn-poll";

/**
 * What Dawn's native side does while a GPU operation is pending, for `ms`: a native callback that,
 * run as an immediate, calls setImmediate with itself straight from native code. A bound
 * Reflect.apply is such a function (no JavaScript frame of its own): `list` holds the callback and
 * `list` itself, so each run calls `setImmediate(poll, list)` again. Returns how many of its
 * re-polls went to a timer (counted through a wrapped setTimeout).
 */
async function nativePollLoop(ms: number): Promise<number> {
  const realSetTimeout = globalThis.setTimeout;
  let timers = 0;
  globalThis.setTimeout = ((...a: Parameters<typeof setTimeout>) => {
    timers++;
    return realSetTimeout(...a);
  }) as typeof setTimeout;
  const list: unknown[] = [];
  const poll = Reflect.apply.bind(null, globalThis.setImmediate, null);
  list.push(poll, list);
  try {
    globalThis.setImmediate(poll as never, list);
    await new Promise((r) => realSetTimeout(r, ms));
  } finally {
    // The next run calls Math.max(list): the loop ends.
    list[0] = Math.max;
    await new Promise((r) => realSetTimeout(r, 20));
    globalThis.setTimeout = realSetTimeout;
  }
  return timers;
}

describe("spacing Dawn's GPU polls (SIT_DAWN_POLL_MS)", () => {
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

  it("spaces a native re-poll loop by the interval and leaves JavaScript immediates alone", async () => {
    spaceDawnPolls(5);
    const spaced = await nativePollLoop(100);
    spaceDawnPolls(0);
    const busy = await nativePollLoop(20);
    spaceDawnPolls(5);
    // At 5 ms, ≈ 20 timers in 100 ms (fewer when timers run late); off, none (all immediates).
    expect(spaced).toBeGreaterThan(2);
    expect(spaced).toBeLessThan(30);
    expect(busy).toBe(0);
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
    expect(performance.now() - t0).toBeLessThan(250);
  });
});
