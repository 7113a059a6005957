import { existsSync, readFileSync, readdirSync } from "node:fs";
import { builtinModules } from "node:module";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Metafile, type Plugin } from "esbuild";
import { describe, expect, it } from "vitest";

// Every published package's main entry must load in a web page: bundled for the browser, as a
// page's bundler would, it may reach no Node built-in. The tfjs packages are bundled too (their
// browser builds are what a page gets), so a built-in reached through them fails as well. The
// packages' Node-only parts live behind their `./node` subpath, which this test does not bundle.
const root = fileURLToPath(new URL("../..", import.meta.url));
const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));
const published = readdirSync(join(root, "packages"))
  .filter((p) => existsSync(join(root, "packages", p, "package.json")))
  .map((p) => ({ dir: p, pkg: json(join(root, "packages", p, "package.json")) }))
  .filter(({ pkg }) => !pkg.private && !pkg.bin);

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

const INNER = Symbol("inner resolve");

/** Where a built-in was asked for: the file that imported it, as esbuild names inputs. */
interface BuiltinUse {
  builtin: string;
  importer: string;
}

/**
 * Resolve `@sit/<p>` and `@sit/<p>/node` to the packages' sources (a fresh clone has no build), and
 * record every Node built-in instead of failing at the first, so the report names all of them.
 */
function plugin(uses: BuiltinUse[]): Plugin {
  return {
    name: "sit-browser-check",
    setup(b) {
      b.onResolve({ filter: /^@sit\/[a-z-]+(\/node)?$/ }, (args) => {
        const [, name, sub] = /^@sit\/([a-z-]+)(\/node)?$/.exec(args.path) ?? [];
        return { path: join(root, "packages", name, "src", sub ? "node.ts" : "index.ts") };
      });
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === INNER || !builtins.has(args.path)) return undefined;
        // A package's "browser" field may map the built-in away (to nothing or a shim): then it
        // is not reached. Ask esbuild's own resolver, which applies that field.
        const { kind, importer, resolveDir } = args;
        const own = await b.resolve(args.path, { kind, importer, resolveDir, pluginData: INNER });
        if (own.errors.length === 0) return undefined;
        uses.push({ builtin: args.path, importer: relative(root, args.importer) });
        return { path: args.path, external: true };
      });
    },
  };
}

/** The chain of imports from `entry` to `target`, by breadth-first search of the metafile. */
function chain(meta: Metafile, entry: string, target: string): string[] {
  const previous = new Map<string, string | null>([[entry, null]]);
  const queue = [entry];
  while (queue.length > 0) {
    const at = queue.shift() as string;
    if (at === target) break;
    for (const imp of meta.inputs[at]?.imports ?? []) {
      if (imp.external || previous.has(imp.path)) continue;
      previous.set(imp.path, at);
      queue.push(imp.path);
    }
  }
  if (!previous.has(target)) return [target];
  const path: string[] = [];
  for (let at: string | null = target; at !== null; at = previous.get(at) ?? null) path.unshift(at);
  return path;
}

/** One esbuild run over every main entry (tfjs is parsed once): the metafile and the built-ins met. */
async function bundleAll(entries: string[]): Promise<{ meta: Metafile; uses: BuiltinUse[] }> {
  const uses: BuiltinUse[] = [];
  const result = await build({
    absWorkingDir: root,
    entryPoints: entries,
    bundle: true,
    platform: "browser",
    format: "esm",
    // Shared chunks: the code common to the entries (tfjs) is generated once.
    splitting: true,
    outdir: "out",
    write: false,
    metafile: true,
    logLevel: "silent",
    plugins: [plugin(uses)],
  });
  return { meta: result.metafile, uses };
}

/** Files reachable from `entry` in the metafile's import graph. */
function reachable(meta: Metafile, entry: string): Set<string> {
  const seen = new Set<string>([entry]);
  const queue = [entry];
  while (queue.length > 0) {
    const at = queue.shift() as string;
    for (const imp of meta.inputs[at]?.imports ?? [])
      if (!imp.external && !seen.has(imp.path)) {
        seen.add(imp.path);
        queue.push(imp.path);
      }
  }
  return seen;
}

describe("browser bundles", () => {
  const entries = published.map(({ dir }) => `packages/${dir}/src/index.ts`);
  let bundled: Promise<{ meta: Metafile; uses: BuiltinUse[] }> | undefined;
  const all = () => {
    bundled ??= bundleAll(entries);
    return bundled;
  };

  it("lists the published packages (all but the cli)", () => {
    expect(published.map((p) => p.pkg.name)).toEqual(
      expect.arrayContaining(["@sit/core", "@sit/data", "@sit/train", "@sit/recipes"]),
    );
    expect(published.map((p) => p.pkg.name)).not.toContain("@sit/cli");
  });

  for (const { dir, pkg } of published) {
    it(`${pkg.name}'s main entry bundles for the browser with no Node built-in`, async () => {
      const { meta, uses } = await all();
      const entry = `packages/${dir}/src/index.ts`;
      const mine = reachable(meta, entry);
      const report = [
        ...new Set(
          uses
            .filter((u) => mine.has(u.importer))
            .map((u) => [...chain(meta, entry, u.importer), u.builtin].join(" → ")),
        ),
      ];
      expect(report, `${pkg.name} reaches Node built-ins:\n${report.join("\n")}`).toEqual([]);
    });
  }

  // A ./node entry takes what it shares with the main entry through the package's name, which its
  // build keeps external: a second copy of a class or of module state in the Node build would
  // break `instanceof` and registries across the two. Pure helpers may be copied.
  for (const { dir, pkg } of published.filter((p) =>
    existsSync(join(root, "packages", p.dir, "src", "node.ts")),
  )) {
    it(`${pkg.name}/node carries no second copy of the main entry's classes or state`, async () => {
      const { meta } = await all();
      const main = reachable(meta, `packages/${dir}/src/index.ts`);
      const node = await build({
        absWorkingDir: root,
        entryPoints: [`packages/${dir}/src/node.ts`],
        bundle: true,
        platform: "node",
        format: "esm",
        write: false,
        metafile: true,
        logLevel: "silent",
        // As tsup builds it: every package import (the package's own name included) stays
        // external; tsconfig paths would otherwise resolve @sit/* to the sources.
        plugins: [
          {
            name: "external-packages",
            setup(b) {
              b.onResolve({ filter: /^[^./]/ }, (args) => ({ path: args.path, external: true }));
            },
          },
        ],
      });
      const copied = Object.keys(node.metafile.inputs).filter(
        (f) =>
          main.has(f) &&
          /^(export )?(abstract )?class |^let /m.test(readFileSync(join(root, f), "utf8")),
      );
      expect(copied, `${pkg.name}/node bundles main-entry files with classes or state`).toEqual([]);
    });
  }

  it("the check finds a Node built-in and names its importer chain", async () => {
    const uses: BuiltinUse[] = [];
    const entry = "tools/ci/browser-bundles.fixture.ts";
    const result = await build({
      absWorkingDir: root,
      stdin: {
        contents: 'export { initBackend } from "@sit/core/node";',
        resolveDir: root,
        sourcefile: entry,
        loader: "ts",
      },
      bundle: true,
      platform: "browser",
      format: "esm",
      write: false,
      metafile: true,
      logLevel: "silent",
      plugins: [plugin(uses)],
    });
    const found = uses.map((u) => [...chain(result.metafile, entry, u.importer), u.builtin]);
    expect(found.length).toBeGreaterThan(0);
    const wasm = found.find((c) => c.at(-2) === "packages/core/src/backend-wasm-node.ts");
    expect(wasm?.slice(0, 3)).toEqual([
      entry,
      "packages/core/src/node.ts",
      "packages/core/src/backend-node.ts",
    ]);
  });
});
