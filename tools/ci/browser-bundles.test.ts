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

describe("browser bundles", () => {
  it("lists the published packages (all but the cli)", () => {
    expect(published.map((p) => p.pkg.name)).toEqual(
      expect.arrayContaining(["@sit/core", "@sit/data", "@sit/train", "@sit/recipes"]),
    );
    expect(published.map((p) => p.pkg.name)).not.toContain("@sit/cli");
  });

  for (const { dir, pkg } of published) {
    it(`${pkg.name}'s main entry bundles for the browser with no Node built-in`, async () => {
      const uses: BuiltinUse[] = [];
      const entry = `packages/${dir}/src/index.ts`;
      const result = await build({
        absWorkingDir: root,
        entryPoints: [entry],
        bundle: true,
        platform: "browser",
        format: "esm",
        write: false,
        metafile: true,
        logLevel: "silent",
        plugins: [plugin(uses)],
      });
      const report = [
        ...new Set(
          uses.map((u) => [...chain(result.metafile, entry, u.importer), u.builtin].join(" → ")),
        ),
      ];
      expect(report, `${pkg.name} reaches Node built-ins:\n${report.join("\n")}`).toEqual([]);
    });
  }
});
