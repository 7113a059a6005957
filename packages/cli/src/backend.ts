import { BACKEND_NAMES, type BackendInfo, type BackendName, initBackend } from "@sit/core";
import { type CliIO, UsageError, note } from "./io";

/** Values `--backend` accepts. */
export const BACKEND_CHOICES = ["auto", ...BACKEND_NAMES] as const;

/** Start the requested tfjs backend ("auto": the best available) and print the one-line choice. */
export async function startBackend(name: string | undefined, io: CliIO): Promise<BackendInfo> {
  const pref = name ?? "auto";
  if (!(BACKEND_CHOICES as readonly string[]).includes(pref))
    throw new UsageError(
      `--backend: expected one of ${BACKEND_CHOICES.join(", ")}, got ${JSON.stringify(pref)}`,
    );
  return initBackend(pref as BackendName | "auto", {
    log: (line) => note(io, line),
  });
}
