import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cpuMsBetween, mainThreadTimes, otherThreadsCpuMs, threadTimes } from "./thread-time";

describe("cpuMsBetween", () => {
  it("gives each thread's CPU between two snapshots, counting threads born in between from zero", () => {
    const before = new Map([
      ["11", 5],
      ["12", 7.5],
    ]);
    const after = new Map([
      ["11", 9],
      ["12", 7.5],
      ["13", 2.25],
    ]);
    expect(cpuMsBetween(before, after)).toEqual([4, 0, 2.25]);
  });
});

const linux = existsSync(`/proc/${process.pid}/task/${process.pid}/schedstat`);

describe.skipIf(!linux)("threadTimes (Linux schedstat)", () => {
  it("counts the main thread's CPU time as it computes, in milliseconds", () => {
    const t0 = threadTimes();
    const w0 = performance.now();
    let x = 0;
    // Spin for ≈ 30 ms of wall time: the thread's CPU time grows by at most that.
    while (performance.now() - w0 < 30) x += Math.sqrt(x + 1);
    const t1 = threadTimes();
    expect(x).toBeGreaterThan(0);
    expect(t0 && t1).toBeTruthy();
    const cpu = (t1?.cpuMs ?? 0) - (t0?.cpuMs ?? 0);
    expect(cpu).toBeGreaterThan(0);
    // The kernel brings a running thread's total up to date at its scheduler ticks, so each read
    // may lag by up to a tick (1–10 ms): the difference can exceed the wall time by one.
    expect(cpu).toBeLessThanOrEqual(performance.now() - w0 + 10);
    expect(t1?.waitMs).toBeGreaterThanOrEqual(t0?.waitMs ?? 0);
  });

  it("lists the other threads without the main one", () => {
    const others = otherThreadsCpuMs();
    expect(others.has(String(process.pid))).toBe(false);
    for (const ms of others.values()) expect(ms).toBeGreaterThanOrEqual(0);
  });

  it("gives a bench the main thread's times (mainThreadTimes), not another thread's", () => {
    const own = threadTimes();
    const main = mainThreadTimes("a bench");
    // Read just after: at least the same totals, and not those of a thread that started later.
    expect(main.cpuMs).toBeGreaterThanOrEqual(own?.cpuMs ?? Number.POSITIVE_INFINITY);
    expect(main.cpuMs - (own?.cpuMs ?? 0)).toBeLessThan(10);
    expect(main.waitMs).toBeGreaterThanOrEqual(own?.waitMs ?? Number.POSITIVE_INFINITY);
  });

  it("is undefined for a thread that does not exist", () => {
    expect(threadTimes("0")).toBeUndefined();
  });
});
