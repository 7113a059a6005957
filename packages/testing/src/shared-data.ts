import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe } from "vitest";

/**
 * The full real datasets live beside the repository (../shared/data) on the project's machines
 * and in CI; a user's fresh clone does not have them. Tests that need them skip with a reason.
 * SIT_SHARED_DATA overrides the location.
 */
export function sharedDataDir(): string | undefined {
  const dir =
    process.env.SIT_SHARED_DATA ??
    fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
  return existsSync(dir) ? dir : undefined;
}

/** `describe` that runs only when the shared data is present, printing why it skipped otherwise. */
export function describeWithSharedData(name: string, fn: (dataDir: string) => void): void {
  const dir = sharedDataDir();
  if (!dir) {
    console.warn(
      `[skip] ${name}: ../shared/data is absent (set SIT_SHARED_DATA to its path to run this)`,
    );
    describe.skip(name, () => fn(""));
    return;
  }
  describe(name, () => fn(dir));
}
