import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { MetricSink, TrainEvent } from "@sit/train";
import { UsageError } from "./io";

/**
 * Refuse an output folder that cannot be one: `out` itself, or the nearest of its parents that
 * exists, is a file (`mkdir` would fail with a bare EEXIST or ENOTDIR, after the backend and the
 * dataset were set up).
 */
export function checkOutFolder(out: string, flag = "--out"): void {
  let at = resolve(out);
  while (!existsSync(at)) {
    const up = dirname(at);
    if (up === at) return;
    at = up;
  }
  if (statSync(at).isDirectory()) return;
  throw new UsageError(
    at === resolve(out)
      ? `${flag}: expected a folder, got the file ${at}`
      : `${flag}: expected a folder, but ${at} on its path is a file`,
  );
}

/**
 * The sinks that write a run's files (metrics, TensorBoard events) and whatever else belongs in
 * its folder (run.json), opened by `open` when training starts, that is once a resume has
 * succeeded: a run that fails before its first step (an unreadable or incompatible checkpoint)
 * leaves the folder as it was.
 */
export class RunFilesSink implements MetricSink {
  private sinks: MetricSink[] | undefined;

  constructor(private readonly open: () => MetricSink[]) {}

  async onEvent(event: TrainEvent): Promise<void> {
    if (!this.sinks) {
      if (event.type !== "start") return;
      this.sinks = this.open();
    }
    for (const sink of this.sinks) await sink.onEvent(event);
  }

  async close(): Promise<void> {
    let first: unknown;
    for (const sink of this.sinks ?? []) {
      try {
        await sink.close?.();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}
