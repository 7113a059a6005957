import { BACKEND_NAMES, type BackendInfo, type BackendName } from "@sit/core";
import { initBackend } from "@sit/core/node";
import { type CliIO, UsageError, note } from "./io";

/** Values `--backend` accepts. */
export const BACKEND_CHOICES = ["auto", ...BACKEND_NAMES] as const;

/**
 * Start the tfjs backend a command asked for and print the one-line choice. Precedence:
 * `--backend` (or the config's `backend`), then the `SIT_BACKEND` environment variable (which
 * initBackend reads for "auto"), then the command's own default (`auto`: the best available).
 */
export async function startBackend(
  name: string | undefined,
  io: CliIO,
  fallback: BackendName | "auto" = "auto",
): Promise<BackendInfo> {
  const fromEnv = process.env.SIT_BACKEND ? "auto" : undefined;
  const pref = name ?? fromEnv ?? fallback;
  if (!(BACKEND_CHOICES as readonly string[]).includes(pref))
    throw new UsageError(
      `--backend: expected one of ${BACKEND_CHOICES.join(", ")}, got ${JSON.stringify(pref)}`,
    );
  return initBackend(pref as BackendName | "auto", {
    log: (line) => note(io, line),
  });
}
