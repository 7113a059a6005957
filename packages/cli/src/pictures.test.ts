import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import { beforeAll, describe, expect, it } from "vitest";
import { attention } from "./commands/attention";
import { reconstruct } from "./commands/reconstruct";
import type { Rect } from "./figure";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

const quiet = { out: () => {}, err: () => {}, quiet: true };
const OUT = process.env.SIT_PICTURES_DIR; // set to keep the pictures for a look

function readPng(path: string): PNG {
  return PNG.sync.read(readFileSync(path));
}

/** Fraction of dark (text) pixels in a band of the picture. */
function inkIn(png: PNG, r: Rect): number {
  let dark = 0;
  for (let y = r.y; y < r.y + r.height; y++)
    for (let x = r.x; x < r.x + r.width; x++) {
      const o = (y * png.width + x) * 4;
      if (png.data[o] + png.data[o + 1] + png.data[o + 2] < 3 * 110) dark++;
    }
  return dark / (r.width * r.height);
}

/** Fraction of pixels that are not white background. */
function paintIn(png: PNG, r: Rect): number {
  let painted = 0;
  for (let y = r.y; y < r.y + r.height; y++)
    for (let x = r.x; x < r.x + r.width; x++) {
      const o = (y * png.width + x) * 4;
      if (png.data[o] + png.data[o + 1] + png.data[o + 2] < 3 * 245) painted++;
    }
  return painted / (r.width * r.height);
}

/** Red channel of every pixel of a cell. */
function cellPixels(png: PNG, r: Rect): number[] {
  const out: number[] = [];
  for (let y = r.y; y < r.y + r.height; y++)
    for (let x = r.x; x < r.x + r.width; x++) out.push(png.data[(y * png.width + x) * 4]);
  return out;
}

describe("pictures a person can read (reconstruct, attention)", () => {
  const dir = tempDir();
  const run = join(dir, "run");
  const pictures = OUT ?? dir;
  beforeAll(async () => {
    const r = await sit(
      "pretrain",
      "--config",
      writeConfig(dir, tinyConfig(run)),
      "--steps",
      "2",
      "-q",
    );
    expect(r.code, r.err).toBe(EXIT.ok);
  }, 120_000);

  it("reconstruct: titled columns original | corrupted | reconstruction | filled in over the pictures", async () => {
    const path = join(pictures, "reconstruction.png");
    const r = await reconstruct(
      { checkpoint: run, out: path, split: "test", count: 3, weights: "student", seed: 0 },
      quiet,
    );
    const png = readPng(path);
    expect(r.cells).toHaveLength(3);
    expect(r.cells[0]).toHaveLength(4);
    const first = r.cells[0][0];
    expect([first.width, first.height]).toEqual([112, 112]); // 28 px enlarged 4×
    // Title and column titles are drawn as text above the first row: dark glyph pixels there,
    // none in the white margin between the columns' titles and the pictures.
    expect(inkIn(png, { x: 0, y: 0, width: png.width, height: 30 })).toBeGreaterThan(0.01);
    for (const cell of r.cells[0])
      expect(
        inkIn(png, { x: cell.x, y: cell.y - 24, width: cell.width, height: 20 }),
      ).toBeGreaterThan(0.01);
    // Each picture sits where the layout says: the corrupted one differs from the original, the
    // reconstruction from both.
    const [orig, corr, rec, filled] = r.cells[0].map((c) => cellPixels(png, c));
    expect(corr).not.toEqual(orig);
    expect(rec).not.toEqual(corr);
    // Filled in: the reconstruction wherever the corruption changed a pixel, the original on at
    // least the uncorrupted share of the picture (r.maskedFraction is over the shown images).
    let changed = 0;
    let asOriginal = 0;
    for (let i = 0; i < orig.length; i++) {
      if (corr[i] !== orig[i]) {
        changed++;
        expect(filled[i]).toBe(rec[i]);
      }
      if (filled[i] === orig[i]) asOriginal++;
    }
    expect(changed).toBeGreaterThan(0);
    expect(asOriginal / orig.length).toBeGreaterThan(0.2);
  }, 60_000);

  it("attention: heads overlaid on the image, titled, with a colour bar; an untrained model looks flat", async () => {
    const path = join(pictures, "attention.png");
    const r = await attention(
      { checkpoint: run, out: path, split: "test", count: 2, weights: "student" },
      quiet,
    );
    // 2 training steps: attention is close to uniform, so the shared scale stays at its floor.
    expect(r.scaleMax).toBe(4);
    const png = readPng(path);
    expect(r.cells[0]).toHaveLength(1 + r.heads + 1); // image, heads, mean
    for (const cell of r.cells[0])
      expect(
        inkIn(png, { x: cell.x, y: cell.y - 24, width: cell.width, height: 20 }),
      ).toBeGreaterThan(0.01);
    // The overlay keeps the image: a head's map varies with the picture under it (not flat),
    // yet it is no min–max stretch of noise: its colours span far less than the full range.
    const head = cellPixels(png, r.cells[0][1]);
    const image = cellPixels(png, r.cells[0][0]);
    expect(new Set(head).size).toBeGreaterThan(4);
    const spread = (v: number[]) => Math.max(...v) - Math.min(...v);
    expect(spread(head)).toBeLessThan(spread(image));
    // A colour bar right of the grid.
    const last = r.cells[0][r.cells[0].length - 1];
    expect(
      paintIn(png, { x: last.x + last.width + 4, y: last.y, width: 40, height: last.height }),
    ).toBeGreaterThan(0.3);
  }, 60_000);

  it("sit linear writes the test split's confusion matrix (class names, counts, titles)", async () => {
    const path = join(pictures, "confusion.png");
    const r = await sit(
      "linear",
      ...["--checkpoint", run, "--train-limit", "100", "--test-limit", "60", "--epochs", "2"],
      ...["--no-cache", "--backend", "cpu", "--confusion", path],
    );
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.err).toContain(`confusion matrix of the test split: ${path}`);
    const png = readPng(path);
    // 10 Fashion-MNIST classes in 48 px cells, names and titles around them.
    expect(png.width).toBeGreaterThan(10 * 48);
    expect(png.height).toBeGreaterThan(10 * 48);
    expect(inkIn(png, { x: 0, y: 0, width: png.width, height: 30 })).toBeGreaterThan(0.01);
    const record = JSON.parse(
      readFileSync(join(run, "eval.jsonl"), "utf8").trim().split("\n").pop()!,
    );
    expect(record).toMatchObject({ command: "linear", confusion: path });
  }, 120_000);
});
