import { SitError } from "@sit/core";

/** Exit codes of the `sit` command. */
export const EXIT = {
  /** The command did what it was asked. */
  ok: 0,
  /** It ran and failed (unreadable file, non-finite loss, a backend that cannot start…). */
  failure: 1,
  /** It was called wrongly (unknown option, bad value, missing argument, invalid config). */
  usage: 2,
  /** Stopped by SIGINT after writing a checkpoint (128 + signal 2, the shell convention). */
  interrupted: 130,
  /** Stopped by SIGTERM after writing a checkpoint (128 + signal 15). */
  terminated: 143,
} as const;

/**
 * A wrong invocation: an unknown or malformed option, a value out of range, an invalid config
 * file. The CLI prints its message with a hint to `--help` and exits with {@link EXIT.usage}.
 */
export class UsageError extends SitError {}

/** Where a command writes: results and summaries to `out`, progress and diagnostics to `err`. */
export interface CliIO {
  /** Standard output (results, the JSON of `sit info`…). */
  out: (text: string) => void;
  /** Standard error (progress, warnings, errors). */
  err: (text: string) => void;
  /** Stream for @sit/train's console progress sink (defaults to `process.stderr`). */
  progressStream?: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  /** Silence progress output (results are still written to `out`). */
  quiet?: boolean;
}

/** The process's own streams. */
export function processIO(): CliIO {
  return {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    progressStream: process.stderr,
  };
}

/** Print one line to `io.err` unless quiet. */
export function note(io: CliIO, line: string): void {
  if (!io.quiet) io.err(`${line}\n`);
}

/** A percentage with two decimals. */
export function pct(fraction: number): string {
  return `${(100 * fraction).toFixed(2)} %`;
}
