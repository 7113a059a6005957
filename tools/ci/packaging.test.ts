import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// What a fresh clone and an npm user get: the licence in every published package, and a `sit`
// command that runs our CLI (the bare name `sit` belongs to an unrelated registry package).
const root = fileURLToPath(new URL("../..", import.meta.url));
const json = (path: string) => JSON.parse(readFileSync(path, "utf8"));
const published = readdirSync(join(root, "packages"))
  .map((p) => join(root, "packages", p))
  .filter(
    (dir) => existsSync(join(dir, "package.json")) && !json(join(dir, "package.json")).private,
  );

function markdown(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name === "node_modules" || e.name.startsWith(".") || e.name === "api") return [];
    const p = join(dir, e.name);
    return e.isDirectory() ? markdown(p) : e.name.endsWith(".md") ? [p] : [];
  });
}

describe("licence", () => {
  const licence = readFileSync(join(root, "LICENSE"), "utf8");

  it("the repository is Apache-2.0, with the licence text at the root", () => {
    expect(licence).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(licence).toContain("END OF TERMS AND CONDITIONS");
    expect(json(join(root, "package.json")).license).toBe("Apache-2.0");
  });

  it("every published package ships the same LICENSE and declares Apache-2.0", () => {
    expect(published.length).toBeGreaterThan(5);
    for (const dir of published) {
      const name = relative(root, dir);
      const pkg = json(join(dir, "package.json"));
      expect(pkg.license, name).toBe("Apache-2.0");
      expect(existsSync(join(dir, "LICENSE")), `${name}/LICENSE`).toBe(true);
      expect(readFileSync(join(dir, "LICENSE"), "utf8") === licence, `${name}/LICENSE`).toBe(true);
      if (pkg.files) expect(pkg.files, `${name} package.json "files"`).toContain("LICENSE");
    }
  });
});

describe("the sit command", () => {
  const cli = join(root, "packages", "cli");
  const bin = json(join(cli, "package.json")).bin.sit as string;

  it("@sit/cli's bin exists before any build, so npm ci links it", () => {
    const path = join(cli, bin);
    expect(path.startsWith(join(cli, "dist")), `${bin} is a build output`).toBe(false);
    expect(existsSync(path), bin).toBe(true);
    accessSync(path, constants.X_OK);
    expect(readFileSync(path, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(json(join(cli, "package.json")).files).toContain(bin.replace(/^\.\//, "").split("/")[0]);
  });

  it("the bin runs the built CLI, or says how to build it", () => {
    const r = spawnSync(process.execPath, [join(cli, bin), "--version"], { encoding: "utf8" });
    if (existsSync(join(cli, "dist", "bin.js"))) {
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(json(join(cli, "package.json")).version);
    } else {
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/not built.*npm run build.*npm run sit --/);
    }
  });

  it("`npm run sit -- …` runs the CLI from its sources, with no build", () => {
    const npm = process.env.npm_execpath;
    const r = npm
      ? spawnSync(process.execPath, [npm, "run", "--silent", "sit", "--", "--version"], {
          cwd: root,
          encoding: "utf8",
        })
      : spawnSync("npm", ["run", "--silent", "sit", "--", "--version"], {
          cwd: root,
          encoding: "utf8",
        });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(json(join(cli, "package.json")).version);
  });

  it("no document tells readers to run `npx sit` (that name is someone else's package)", () => {
    for (const file of [
      join(root, "README.md"),
      ...markdown(join(root, "docs")),
      ...markdown(join(root, "packages")),
      ...markdown(join(root, "examples")),
    ])
      expect(readFileSync(file, "utf8"), relative(root, file)).not.toMatch(/\bnpx\s+sit\b/);
  });
});
