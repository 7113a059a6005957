import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// Each case runs in a fresh Node process: what happens on import and on the first tensor cannot
// be observed in a test process that a setup file has already started on a backend. Native
// libraries (Dawn) write to file descriptor 2 directly, so stderr is read from the process too.
const root = fileURLToPath(new URL("../../..", import.meta.url));
const child = fileURLToPath(new URL("./test-backend-child.ts", import.meta.url));

function run(scenario: string): { report: Record<string, unknown>; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", child, scenario], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, SIT_BACKEND: "" },
    timeout: 120_000,
  });
  // The tail is enough: a failed wasm start dumps the whole minified emscripten module.
  expect(r.status, r.stderr.slice(-1500)).toBe(0);
  return { report: JSON.parse(r.stdout), stderr: r.stderr };
}

function installed(id: string): boolean {
  try {
    createRequire(import.meta.url).resolve(id);
    return true;
  } catch {
    return false;
  }
}

describe("@sit/core in a fresh process", () => {
  it("registers no backend on import: a first tensor without initBackend computes on cpu", () => {
    const { report } = run("no-init");
    expect(report.exports).toBeGreaterThan(10);
    expect(report.wasmRegistered).toBe(false);
    expect(report.product).toEqual([7, 10, 15, 22]);
    expect(report.backend).toBe("cpu");
  });

  it("initBackend('cpu') silences tfjs's 'running TensorFlow.js in Node.js' banner", () => {
    const { report, stderr } = run("cpu");
    expect(report.sum).toEqual([2, 3]);
    expect(stderr).not.toMatch(/TensorFlow\.js in Node\.js/);
    expect(stderr).toBe("");
  });

  it("a skipped WebGPU leaves nothing from Dawn on stderr and says in one line why", (ctx) => {
    if (!installed("webgpu")) {
      console.warn("[skip] the webgpu package (Dawn) is not installed here");
      ctx.skip();
    }
    const { report, stderr } = run("webgpu-or-cpu");
    if (report.name === "webgpu") {
      console.warn("[skip] a hardware WebGPU adapter is present, so webgpu is not skipped");
      ctx.skip();
    }
    const skipped = report.skipped as { name: string; reason: string }[];
    expect(skipped.map((s) => s.name)).toEqual(["webgpu"]);
    expect(skipped[0].reason).not.toContain("\n");
    expect(skipped[0].reason.length).toBeGreaterThan(0);
    expect(stderr).toBe("");
  });
});
