// Helpers for the tests that run tools/scale-out with Debian's python3-torch (not exported from
// the package). .ci/run installs python3-torch; without it those tests skip and say why.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const PYTHON = process.env.SIT_TORCH_PYTHON ?? "/usr/bin/python3";
export const SCALE_OUT = fileURLToPath(new URL("../../../tools/scale-out/", import.meta.url));

const probe = spawnSync(PYTHON, ["-c", "import torch"], { encoding: "utf8" });
/** Why the PyTorch tests cannot run here ("" when they can). */
export const torchMissing =
  probe.status === 0
    ? ""
    : `${PYTHON} -c 'import torch' failed (${(probe.stderr || String(probe.error)).trim().split("\n").pop()}); install python3-torch libopenblas0-pthread`;

/**
 * Run a command asynchronously (a long synchronous child blocks vitest's worker, whose RPC then
 * times out); resolves with its exit code and output.
 */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("error", (e) => done({ code: null, out, err: `${err}${e}` }));
    child.on("close", (code) => done({ code, out, err }));
  });
}

/** Run a tools/scale-out script (from its folder); its stderr is the assertion message. */
export function python(script: string, ...args: string[]) {
  return run(PYTHON, [join(SCALE_OUT, script), ...args], { cwd: SCALE_OUT });
}
