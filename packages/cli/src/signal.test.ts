import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { listCheckpoints } from "@sit/train";
import { describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { tempDir, tinyConfig, writeConfig } from "./test-support";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = fileURLToPath(new URL("./bin.ts", import.meta.url));

describe("sit pretrain under a real SIGINT (child process)", () => {
  it("writes a checkpoint after the current step and exits with 130", async () => {
    const dir = tempDir();
    const out = join(dir, "run");
    const cfg = tinyConfig(out);
    (cfg.config as { optim: { epochs: number } }).optim.epochs = 500; // far more than the test waits for
    const child = spawn(
      process.execPath,
      ["--import", "tsx", bin, "pretrain", "--config", writeConfig(dir, cfg)],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
    );
    let err = "";
    let sent = false;
    child.stderr.on("data", (d) => {
      err += d;
      // The first progress line is printed after the first step.
      if (!sent && /epoch 1\/500 \[/.test(err)) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(sent).toBe(true);
    expect(err).toMatch(/interrupted: checkpoint written; run again with --resume/);
    expect(code).toBe(EXIT.interrupted);
    const ckpts = listCheckpoints(join(out, "checkpoints"));
    expect(ckpts).toHaveLength(1);
    expect(ckpts[0].step).toBeGreaterThanOrEqual(1);
    expect(ckpts[0].step).toBeLessThan(2000);
  }, 120_000);
});
