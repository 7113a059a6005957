// Per-thread scheduler times of this process (Linux: /proc/<pid>/task/<tid>/schedstat, in
// nanoseconds), for the host-time benches. A thread's wall time over a span is its CPU time, plus
// its run-queue wait (runnable, but every core busy with other threads), plus the time it slept.
// On a 2-core machine running lavapipe, the driver's thread and V8's and Dawn's helper threads
// compete with the main thread for the cores: the run-queue wait is that contention, measured.
// A running thread's totals are brought up to date at its scheduler ticks, so a read may lag by up
// to one tick (1–10 ms, the kernel's HZ): spans of a few ms need medians over many steps.
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

export interface ThreadTimes {
  /** Milliseconds the thread has run on a CPU. */
  cpuMs: number;
  /** Milliseconds it has waited, runnable, for a CPU. */
  waitMs: number;
}

/** The scheduler's times of one thread of this process (the main thread by default), or undefined off Linux. */
export function threadTimes(tid: number | string = process.pid): ThreadTimes | undefined {
  try {
    const [run, wait] = readFileSync(`/proc/${process.pid}/task/${tid}/schedstat`, "utf8").split(
      " ",
    );
    return { cpuMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
  } catch {
    return undefined;
  }
}

/** The main thread's times, for a bench that reads them every step: throws off Linux, naming `bench`. */
export function mainThreadTimes(bench: string): ThreadTimes {
  const times = threadTimes();
  if (!times) throw new Error(`${bench}: needs Linux's /proc/<pid>/task/<tid>/schedstat`);
  return times;
}

/** CPU milliseconds of every thread of this process but the main one, by thread id (empty off Linux). */
export function otherThreadsCpuMs(): Map<string, number> {
  const cpu = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${process.pid}/task`);
  } catch {
    return cpu;
  }
  for (const tid of tids) {
    if (tid === String(process.pid)) continue;
    // (A thread may end between the listing and the read.)
    const times = threadTimes(tid);
    if (times) cpu.set(tid, times.cpuMs);
  }
  return cpu;
}

/** Per thread, the CPU milliseconds between two snapshots of otherThreadsCpuMs (threads born in between count from 0). */
export function cpuMsBetween(before: Map<string, number>, after: Map<string, number>): number[] {
  const spent: number[] = [];
  for (const [tid, ms] of after) spent.push(ms - (before.get(tid) ?? 0));
  return spent;
}

/**
 * Pin this process's main thread to CPU 0 and every other thread (a software driver's, V8's and
 * Dawn's helpers) to CPU 1 (Linux, `taskset`): the main thread then has a core to itself, as it
 * would beside a GPU. Returns how many other threads were pinned.
 */
export function pinMainThreadAlone(): number {
  const tids = readdirSync(`/proc/${process.pid}/task`);
  for (const tid of tids) {
    const cpu = tid === String(process.pid) ? "0" : "1";
    const pinned = spawnSync("taskset", ["-p", "-c", cpu, tid], { encoding: "utf8" });
    if (pinned.status !== 0)
      throw new Error(
        `pinMainThreadAlone: taskset -p -c ${cpu} ${tid} failed (${pinned.error?.message ?? pinned.stderr.trim()}); it needs Linux, util-linux's taskset and 2 CPUs`,
      );
  }
  return tids.length - 1;
}
