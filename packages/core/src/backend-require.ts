// Node only (@sit/core/node): optional packages loaded with Node's require.
import { createRequire } from "node:module";

const requireFrom = createRequire(import.meta.url);

/** Load an optional package, or say in a few words why it cannot be (for a backend's skip reason). */
export function tryRequire(id: string): { ok: true; mod: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, mod: requireFrom(id) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "MODULE_NOT_FOUND" && e.message.includes(id))
      return { ok: false, reason: `${id} is not installed` };
    return { ok: false, reason: `${id} failed to load: ${e.message.split("\n")[0]}` };
  }
}

/** Where an optional package's entry file is, or undefined when it is not installed. */
export function resolveOptional(id: string): string | undefined {
  try {
    return requireFrom.resolve(id);
  } catch {
    return undefined;
  }
}
