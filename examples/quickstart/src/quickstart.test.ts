import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { runQuickstart } from "./quickstart";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";

describe("quick start (smoke: every stage in a few steps)", () => {
  it("pretrains, measures k-NN of random init and of the pretrained network, and writes the reconstruction PNG", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "sit-quickstart-")), "run");
    const lines: string[] = [];
    let progress = "";
    const r = await runQuickstart({
      smoke: true,
      out,
      log: (l) => lines.push(l),
      io: {
        out: () => {},
        err: (t) => {
          progress += t;
        },
        progressStream: { write: (t: string) => (progress += t), isTTY: false },
      },
    });
    const text = lines.join("\n");
    // 128 images at batch 32: one epoch of 4 steps, with a checkpoint at the end.
    expect(r.pretrain.reason).toBe("completed");
    expect(r.pretrain.steps).toBe(4);
    expect(existsSync(r.pretrain.checkpoint!)).toBe(true);
    expect(r.knn.trainRows).toBe(200);
    expect(r.knn.testRows).toBe(100);
    for (const v of [r.knn.random, r.knn.pretrained]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    expect(text).toMatch(/random init \(same architecture\)\s+\d+\.\d %/);
    expect(text).toMatch(/SiT-pretrained \(4 steps, 1 epochs\)\s+\d+\.\d %/);
    const png = PNG.sync.read(readFileSync(r.reconstruction.path));
    // A titled figure around 8 rows × 3 columns of 112 px pictures (28 px × 4): room for the
    // pictures, plus a title and column titles above them.
    expect(png.width).toBeGreaterThanOrEqual(3 * 112);
    expect(png.height).toBeGreaterThanOrEqual(8 * 112 + 40);
    expect(r.reconstruction.path).toBe(join(out, "reconstruction.png"));
    expect(progress).toMatch(/backend: wasm/);
  }, 120_000);
});
