import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** This module's file path, in the ESM build (import.meta.url) and in the CJS build (__filename). */
export function moduleFile(): string | undefined {
  if (typeof __filename === "string") return __filename;
  try {
    return fileURLToPath(import.meta.url);
  } catch {
    return undefined;
  }
}

/** The folder of this module's file. */
export function moduleDir(): string | undefined {
  const f = moduleFile();
  return f ? dirname(f) : undefined;
}

/** `require` resolving from this package (falls back to the working directory). */
export function moduleRequire(): NodeJS.Require {
  return createRequire(moduleFile() ?? `${process.cwd()}/`);
}
