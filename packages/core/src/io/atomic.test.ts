import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { removeStaleTempFiles, writeFileAtomic } from "./atomic";

/** The pid of a process that has exited (a child run to completion). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  expect(child.status).toBe(0);
  return child.pid!;
}

describe("writeFileAtomic temp files", () => {
  it("removeStaleTempFiles deletes orphans of dead writers only", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-atomic-"));
    writeFileAtomic(join(dir, "checkpoint-00000004.safetensors"), "complete");
    const dead = deadPid();
    const orphans = [
      `.checkpoint-00000005.safetensors.${dead}.1733240000000.0.tmp`,
      `.latest.${dead}.1733240000001.1.tmp`,
    ];
    for (const name of orphans) writeFileSync(join(dir, name), Buffer.alloc(1000));
    // A writer that still runs (this process, and our parent) keeps its file; foreign files stay.
    const live = [
      `.checkpoint-00000006.safetensors.${process.pid}.1733240000002.2.tmp`,
      `.checkpoint-00000006.safetensors.${process.ppid}.1733240000003.3.tmp`,
    ];
    for (const name of live) writeFileSync(join(dir, name), "writing");
    writeFileSync(join(dir, "notes.tmp"), "user file");
    mkdirSync(join(dir, `.folder.${dead}.1.2.tmp`));

    const { removed, bytes } = removeStaleTempFiles(dir);
    expect(removed.map((p) => p.slice(dir.length + 1)).sort()).toEqual([...orphans].sort());
    expect(bytes).toBe(2000);
    expect(readdirSync(dir).sort()).toEqual(
      [...live, `.folder.${dead}.1.2.tmp`, "checkpoint-00000004.safetensors", "notes.tmp"].sort(),
    );
    expect(removeStaleTempFiles(join(dir, "missing"))).toEqual({ removed: [], bytes: 0 });
  });
});
