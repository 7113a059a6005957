import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { listCheckpoints, loadCheckpointFile } from "./checkpoint";

const root = fileURLToPath(new URL("../../..", import.meta.url));

describe("fit under a real SIGTERM (child process)", () => {
  it("finishes the step, writes a checkpoint, resolves and lets the process exit with 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-sig-"));
    const child = spawn(
      process.execPath,
      ["--import", "tsx", fileURLToPath(new URL("./test-signal-child.ts", import.meta.url)), dir],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    let sent = false;
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.stdout.on("data", (d) => {
      out += d;
      if (!sent && out.includes("STEP 3\n")) {
        sent = true;
        child.kill("SIGTERM");
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(err).toContain("SIGTERM received");
    expect(code).toBe(0);
    const line = out.split("\n").find((l) => l.startsWith("RESULT "));
    expect(line).toBeDefined();
    const result = JSON.parse(line!.slice("RESULT ".length));
    expect(result.reason).toBe("signal");
    expect(result.signal).toBe("SIGTERM");
    expect(result.listeners).toBe(0);
    const lastStep = Math.max(...[...out.matchAll(/STEP (\d+)/g)].map((m) => Number(m[1])));
    expect(result.steps).toBe(lastStep + 1);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([result.steps]);
    const ck = await loadCheckpointFile(result.checkpoint);
    expect(ck.progress.step).toBe(result.steps);
    ck.dispose();
  }, 60_000);
});
