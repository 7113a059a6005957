import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { PICTURES, writeGmmlPictures } from "./scripts/gmml-pictures";

// Every ```ts block of docs/**/*.md and of the README runs here, so the guides cannot rot. Each runs as its own program (node --import tsx, from the repository root),
// exactly as a reader who copies it into a fresh file would run it: no setup file, no backend
// started beforehand, nothing shared with the other snippets. A block may be skipped only with a
// reason on the line before it: <!-- snippet: skip (needs a GPU) -->.
const docs = fileURLToPath(new URL(".", import.meta.url));
const root = join(docs, "..");
const require = createRequire(import.meta.url);
const snippetDir = join(docs, ".snippets"); // git-ignored; inside the repo so @sit/* paths resolve

function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === "api" || e.name.startsWith(".") ? [] : markdownFiles(p);
    return e.name.endsWith(".md") && e.name !== "api-index.md" ? [p] : [];
  });
}

interface Snippet {
  file: string;
  line: number;
  code: string;
  skip?: string;
}

/** The fenced code blocks of a markdown file, with their language and any skip marker. */
function codeBlocks(text: string): { lang: string; line: number; code: string; skip?: string }[] {
  const lines = text.split("\n");
  const out: { lang: string; line: number; code: string; skip?: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
    const marker = /^<!--\s*snippet:\s*skip\s*(?:\((.*)\))?\s*-->\s*$/.exec(lines[start - 1] ?? "");
    out.push({
      lang: open[1],
      line: start + 1,
      code: body.join("\n"),
      skip: marker ? (marker[1] ?? "").trim() : undefined,
    });
  }
  return out;
}

/** The README of the repository and of every package (npm shows the latter). */
function readmes(): string[] {
  const packages = join(root, "packages");
  return [
    join(root, "README.md"),
    ...readdirSync(packages)
      .map((p) => join(packages, p, "README.md"))
      .filter((p) => existsSync(p)),
  ];
}

// Package READMEs are API summaries (fragments that use names defined elsewhere): their links are
// checked below, their code is not run.
const files = [...markdownFiles(docs), join(root, "README.md")];
const packageReadmes = readmes().slice(1);
const snippets: Snippet[] = files.flatMap((file) =>
  codeBlocks(readFileSync(file, "utf8"))
    .filter((b) => b.lang === "ts" || b.lang === "typescript")
    .map((b) => ({ file, line: b.line, code: b.code, skip: b.skip })),
);

rmSync(snippetDir, { recursive: true, force: true });
mkdirSync(snippetDir, { recursive: true });
afterAll(() => rmSync(snippetDir, { recursive: true, force: true }));

describe("docs: code blocks", () => {
  it("every JavaScript/TypeScript block is a ts block, and skip markers give a reason", () => {
    expect(snippets.length).toBeGreaterThanOrEqual(8);
    for (const file of files)
      for (const b of codeBlocks(readFileSync(file, "utf8"))) {
        const where = `${relative(root, file)}:${b.line}`;
        expect(["js", "javascript", "mjs", "tsx"], `${where}: use \`\`\`ts`).not.toContain(b.lang);
        if (b.skip !== undefined)
          expect(b.skip.length, `${where}: a skip needs a reason`).toBeGreaterThan(0);
      }
  });

  for (const [i, s] of snippets.entries()) {
    const name = `${relative(root, s.file)}:${s.line}`;
    if (s.skip !== undefined) {
      it.skip(`${name} (skipped: ${s.skip})`, () => {});
      continue;
    }
    it(`${name} runs as its own program`, async () => {
      const run = await runSnippet(writeSnippet(s, i));
      // The tail: a failing wasm start dumps the whole minified emscripten module.
      expect(run.code, `${name}\n${run.stderr.slice(-3000)}`).toBe(0);
    }, 320_000);
  }
});

/** Run one snippet file with node + tsx from the repository root. */
function runSnippet(path: string) {
  return runNode(["--import", "tsx", path]);
}

/** Run node asynchronously (vitest's worker must stay responsive), as a reader's shell would. */
function runNode(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.SIT_BACKEND;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env, timeout: 300_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Write a snippet as a module of its own (`export {}`: top-level await, no shared globals). */
function writeSnippet(s: Snippet, i: number): string {
  const stem = relative(root, s.file)
    .replace(/\.md$/, "")
    .replace(/[^\w]+/g, "-");
  const path = join(snippetDir, `${stem}-${i}.ts`);
  writeFileSync(path, `${s.code}\nexport {};\n`);
  return path;
}

describe("docs: types", () => {
  it("every snippet typechecks against the packages' sources (tsc -p docs/tsconfig.json)", async () => {
    for (const [i, s] of snippets.entries()) writeSnippet(s, i);
    const tsc = await runNode([
      require.resolve("typescript/bin/tsc"),
      "-p",
      join(docs, "tsconfig.json"),
    ]);
    expect(`${tsc.stdout}${tsc.stderr}`.trim()).toBe("");
    expect(tsc.code).toBe(0);
  });
});

describe("docs: links and pictures", () => {
  it("relative links point at files that exist", () => {
    for (const file of [...files, ...packageReadmes]) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1].split("#")[0];
        if (!target || /^[a-z]+:/.test(target) || target.startsWith("api/")) continue;
        expect(existsSync(join(dirname(file), target)), `${relative(root, file)} → ${target}`).toBe(
          true,
        );
      }
    }
  });

  it("no document cites a file outside the repository (a fresh clone has no ../shared)", () => {
    for (const file of [...files, ...packageReadmes]) {
      const text = readFileSync(file, "utf8");
      expect(text, relative(root, file)).not.toMatch(/\.\.\/shared\/|\bshared\/spec\b|`spec\//);
    }
  });

  it("package READMEs link outside their package with absolute URLs (npm shows them alone)", () => {
    for (const file of packageReadmes) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g))
        expect(m[1], `${relative(root, file)} → ${m[1]}`).not.toMatch(/^\.\.\//);
    }
  });

  it("the GMML pictures in docs/images are what docs/scripts/gmml-pictures.ts draws", () => {
    const tmp = mkdtempSync(join(tmpdir(), "sit-docs-pictures-"));
    try {
      const written = writeGmmlPictures(tmp, root);
      expect(written).toHaveLength(Object.keys(PICTURES).length);
      for (const p of written) {
        const committed = join(docs, "images", basename(p));
        expect(
          existsSync(committed),
          `${committed} (run: npx tsx docs/scripts/gmml-pictures.ts)`,
        ).toBe(true);
        expect(readFileSync(p).equals(readFileSync(committed)), `${basename(p)} is stale`).toBe(
          true,
        );
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
