import { spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { listCheckpoints } from "@sit/train/node";
import { describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const bin = fileURLToPath(new URL("./bin.ts", import.meta.url));

describe("sit pretrain under a real SIGINT / SIGTERM (child process)", () => {
  it.each([
    ["SIGINT", EXIT.interrupted, 130],
    ["SIGTERM", EXIT.terminated, 143],
  ] as const)(
    "%s: writes a checkpoint after the current step and exits with %i",
    async (signal, exitCode, shell) => {
      expect(exitCode).toBe(shell); // 128 + the signal's number, as shells report it
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
          child.kill(signal);
        }
      });
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      expect(sent).toBe(true);
      expect(err).toMatch(/interrupted: checkpoint written; run again with --resume/);
      expect(code).toBe(exitCode);
      const ckpts = listCheckpoints(join(out, "checkpoints"));
      expect(ckpts).toHaveLength(1);
      expect(ckpts[0].step).toBeGreaterThanOrEqual(1);
      expect(ckpts[0].step).toBeLessThan(2000);
    },
    120_000,
  );
});

describe("sit pretrain --max-minutes", () => {
  it("stops at its time budget with a checkpoint, says so, and takes the ETA from the budget", async () => {
    const dir = tempDir();
    const out = join(dir, "run");
    const cfg = tinyConfig(out);
    (cfg.config as { optim: { epochs: number } }).optim.epochs = 500; // ~2,000 steps planned
    const r = await sit("pretrain", "--config", writeConfig(dir, cfg), "--max-minutes", "0.01");
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.out).toMatch(/^pretrain stopped at its time budget: \d+ steps/m);
    expect(r.err).toMatch(/checkpoint \(time budget\) @ step \d+/);
    expect(r.err).toMatch(/^stopped at its time budget after \d+ steps/m);
    expect(r.err).not.toMatch(/aborted|\(abort\)/);
    // The first progress line: 0.6 s of budget left at most, far less than 2,000 steps would take.
    expect(r.err).toMatch(/ETA \d+s \(time budget\)/);
    const ckpts = listCheckpoints(join(out, "checkpoints"));
    expect(ckpts).toHaveLength(1);
    expect(ckpts[0].step).toBeLessThan(2000);
  }, 120_000);
});
