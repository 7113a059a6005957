import { builtinModules } from "node:module";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// Declared dependencies, checked three ways for every package in packages/: what its sources
// import is declared (tests may also use devDependencies and the root's tools); every declared
// runtime dependency is imported; and its @sit dependencies are the ones the package map in
// docs/architecture.md allows (the layering).
const root = fileURLToPath(new URL("../..", import.meta.url));
const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));
const packageDirs = readdirSync(join(root, "packages"))
  .map((p) => join(root, "packages", p))
  .filter((dir) => existsSync(join(dir, "package.json")));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" ? [] : sources(p);
    return /\.(ts|js|mjs|cjs)$/.test(e.name) ? [p] : [];
  });
}

/** Test code, by its path inside a package's src/: specs and the helpers only they import. */
const isTest = (path: string) =>
  /\.test\.ts$|(^|\/)test-[^/]*\.ts$|(^|\/)testing(\.ts$|\/)/.test(path.replaceAll("\\", "/"));
const builtins = new Set(builtinModules);

/** The package a module specifier names (`@scope/name`, `name`), or null for relative and node: ones. */
function packageOf(specifier: string): string | null {
  if (specifier.startsWith(".") || specifier.startsWith("/")) return null;
  if (specifier.startsWith("node:") || builtins.has(specifier.split("/")[0])) return null;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** Packages a source file loads: static and dynamic imports, re-exports, `require("…")`, and names resolved at run time. */
function importsOf(code: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /(?:^|[\s;])(?:import|export)\s[^'"`]*?\sfrom\s*["']([^"']+)["']/g,
    /(?:^|[\s;])import\s*["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire(?:\.resolve)?\(\s*["']([^"']+)["']\s*\)/g,
    /\b(?:tryRequire|resolveOptional|importOptional)\(\s*["']([^"']+)["']/g,
  ];
  for (const re of patterns)
    for (const m of code.matchAll(re)) {
      const p = packageOf(m[1]);
      if (p) found.add(p);
    }
  return [...found];
}

/**
 * The source files the main entry (src/index.ts) reaches through relative imports. Only files
 * outside it (a `./node` entry's) may import the package's own name: they take the shared code
 * from the main entry's build instead of carrying a second copy of it.
 */
function mainEntryFiles(srcDir: string): Set<string> {
  const seen = new Set<string>();
  const queue = [join(srcDir, "index.ts")];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file) || !existsSync(file)) continue;
    seen.add(file);
    const code = readFileSync(file, "utf8");
    for (const m of code.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const base = join(file, "..", m[1]);
      queue.push(...[`${base}.ts`, join(base, "index.ts"), base].filter((f) => /\.ts$/.test(f)));
    }
  }
  return seen;
}

/** The @sit packages each package may depend on, from the package map of docs/architecture.md. */
function layerMap(): Map<string, Set<string> | "any"> {
  const doc = readFileSync(join(root, "docs/architecture.md"), "utf8");
  const map = new Map<string, Set<string> | "any">();
  for (const line of doc.split("\n")) {
    const m = /^\| \[?`(@sit\/[a-z-]+)`/.exec(line);
    if (!m) continue;
    const cells = line.split("|").map((c) => c.trim());
    const deps = cells[cells.length - 2];
    if (deps === "everything") map.set(m[1], "any");
    else
      map.set(
        m[1],
        new Set(
          deps
            .split(",")
            .map((d) => d.trim())
            .filter((d) => /^[a-z-]+$/.test(d))
            .map((d) => `@sit/${d}`),
        ),
      );
  }
  return map;
}

const rootDev = Object.keys(json(join(root, "package.json")).devDependencies ?? {});

describe("declared dependencies", () => {
  const layers = layerMap();

  it("the package map of docs/architecture.md lists every package", () => {
    const names = packageDirs.map((d) => json(join(d, "package.json")).name).sort();
    expect([...layers.keys()].sort()).toEqual(names);
  });

  for (const dir of packageDirs) {
    const pkg = json(join(dir, "package.json"));
    const runtime = new Set<string>([
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}),
      ...Object.keys(pkg.optionalDependencies ?? {}),
    ]);
    const dev = new Set<string>([
      ...runtime,
      ...Object.keys(pkg.devDependencies ?? {}),
      ...rootDev,
    ]);
    const files = sources(join(dir, "src"));
    const mainFiles = mainEntryFiles(join(dir, "src"));
    const hasNodeEntry = pkg.exports?.["./node"] !== undefined;

    it(`${pkg.name}: imports ⊆ declared ⊆ imports, and its @sit dependencies follow the map`, () => {
      const problems: string[] = [];
      const used = new Set<string>();
      for (const file of files) {
        const test = isTest(relative(join(dir, "src"), file));
        // A private package (@sit/testing) is test code as a whole: it may use the test tools.
        const allowed = test || pkg.private ? dev : runtime;
        for (const p of importsOf(readFileSync(file, "utf8"))) {
          if (p === pkg.name) {
            if (!test && hasNodeEntry && !mainFiles.has(file)) continue;
            problems.push(`${relative(root, file)} imports its own package`);
          } else if (!allowed.has(p))
            problems.push(
              `${relative(root, file)} imports ${p}, not declared${test ? " (devDependencies)" : ""}`,
            );
          if (!test) used.add(p);
        }
      }
      for (const d of Object.keys(pkg.dependencies ?? {}))
        if (!used.has(d)) problems.push(`declares ${d} but no source imports it`);
      const layer = layers.get(pkg.name);
      for (const d of Object.keys(pkg.dependencies ?? {}))
        if (d.startsWith("@sit/") && layer !== "any" && !layer?.has(d))
          problems.push(`depends on ${d}, which docs/architecture.md's package map does not allow`);
      expect(problems).toEqual([]);
    });
  }
});

describe("importsOf", () => {
  it("finds static, type-only, side-effect, dynamic and required imports, not relative or node ones", () => {
    const code = [
      'import * as tf from "@tensorflow/tfjs";',
      'import type { Rng } from "@sit/core";',
      'import "./side";',
      'import "@sit/kernels";',
      'export { x } from "@sit/vit/sub";',
      'const m = await import("sharp");',
      'const y = require("pngjs");',
      'import { readFileSync } from "node:fs";',
      'import { join } from "path";',
      'const w = tryRequire("webgpu");',
    ].join("\n");
    expect(importsOf(code).sort()).toEqual(
      [
        "@sit/core",
        "@sit/kernels",
        "@sit/vit",
        "@tensorflow/tfjs",
        "pngjs",
        "sharp",
        "webgpu",
      ].sort(),
    );
  });
});
