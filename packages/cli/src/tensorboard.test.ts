import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

// A small tfevents reader (TFRecord frames of Event protos; the CRCs are checked in @sit/train).
type Fields = Map<number, Array<bigint | Uint8Array>>;

function decode(buf: Uint8Array): Fields {
  const out: Fields = new Map();
  let pos = 0;
  const varint = () => {
    let r = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const b = buf[pos++];
      r |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return r;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const wire = key & 7;
    let v: bigint | Uint8Array;
    if (wire === 0) v = varint();
    else if (wire === 2) {
      const n = Number(varint());
      v = buf.subarray(pos, pos + n);
      pos += n;
    } else {
      const n = wire === 1 ? 8 : 4;
      v = buf.subarray(pos, pos + n);
      pos += n;
    }
    out.set(key >> 3, [...(out.get(key >> 3) ?? []), v]);
  }
  return out;
}

interface Value {
  step: number;
  tag: string;
  fields: Fields;
}

/** Every summary value of every event file in `dir`, with the step of its event. */
function summaryValues(dir: string): Value[] {
  const values: Value[] = [];
  for (const file of readdirSync(dir)) {
    const bytes = readFileSync(join(dir, file));
    for (let pos = 0; pos < bytes.length; ) {
      const len = Number(bytes.readBigUInt64LE(pos));
      const event = decode(bytes.subarray(pos + 12, pos + 12 + len));
      pos += 16 + len;
      const summary = event.get(5)?.[0] as Uint8Array | undefined;
      if (!summary) continue;
      for (const v of decode(summary).get(1) as Uint8Array[]) {
        const fields = decode(v);
        const tag = new TextDecoder().decode(fields.get(1)![0] as Uint8Array);
        values.push({ step: Number(event.get(2)?.[0] ?? 0n), tag, fields });
      }
    }
  }
  return values;
}

const text = (b: unknown) => new TextDecoder().decode(b as Uint8Array);
const stepLosses = (out: string) =>
  readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((e) => e.type === "step")
    .map((e) => e.loss as number);

describe("sit pretrain → TensorBoard: pictures every N steps, the resolved config, hparams", () => {
  it("writes reconstruction and attention PNGs at steps N, 2N…, the config as text and the hparams, without changing training", async () => {
    const dir = tempDir();
    const out = join(dir, "run");
    const path = writeConfig(dir, tinyConfig(out));
    const r = await sit("pretrain", "--config", path, "--steps", "4", "--tb-images-every", "2");
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.err).not.toMatch(/leak|warning/i);
    const values = summaryValues(join(out, "tb"));

    const images = values.filter((v) => v.fields.has(4));
    expect(images.map((v) => `${v.tag}@${v.step}`).sort()).toEqual([
      "pictures/attention@2",
      "pictures/attention@4",
      "pictures/reconstruction@2",
      "pictures/reconstruction@4",
    ]);
    for (const v of images) {
      const img = decode(v.fields.get(4)![0] as Uint8Array);
      const png = PNG.sync.read(Buffer.from(img.get(4)![0] as Uint8Array));
      expect([png.width, png.height]).toEqual([Number(img.get(2)![0]), Number(img.get(1)![0])]);
      expect(png.width).toBeGreaterThan(3 * 112); // titled grids of 28 px pictures enlarged 4×
    }

    const config = values.find((v) => v.tag === "config/run.json")!;
    const tensor = decode(config.fields.get(8)![0] as Uint8Array);
    const shown = JSON.parse(text(tensor.get(8)![0]).replace(/^ {4}/gm, ""));
    expect(shown).toEqual(JSON.parse(readFileSync(join(out, "run.json"), "utf8")));

    const start = values.find((v) => v.tag === "_hparams_/session_start_info")!;
    const pluginData = decode(
      decode(start.fields.get(9)![0] as Uint8Array).get(1)![0] as Uint8Array,
    );
    expect(text(pluginData.get(1)![0])).toBe("hparams");
    const info = decode(decode(pluginData.get(2)![0] as Uint8Array).get(3)![0] as Uint8Array);
    const hparams = new Map(
      (info.get(1) as Uint8Array[]).map((e) => {
        const entry = decode(e);
        const value = decode(entry.get(2)![0] as Uint8Array);
        const num = value.get(2)?.[0] as Uint8Array | undefined;
        return [
          text(entry.get(1)![0]),
          num ? Buffer.from(num).readDoubleLE(0) : text(value.get(3)?.[0]),
        ];
      }),
    );
    expect(hparams.get("recipe")).toBe("sit");
    expect(hparams.get("config.optim.baseLr")).toBe(0.02);
    expect(hparams.get("config.optim.minLr")).toBe(1e-6); // a default, resolved
    expect(hparams.get("derived.stepsPerEpoch")).toBe(4);
    expect(values.some((v) => v.tag === "_hparams_/session_end_info")).toBe(true);

    // The same run without pictures trains identically: drawing them touches no training state.
    const plain = join(dir, "plain");
    const p = await sit(
      "pretrain",
      ...["--config", writeConfig(dir, tinyConfig(plain), "plain.json"), "--steps", "4"],
      ...["--tb-images-every", "0", "-q"],
    );
    expect(p.code, p.err).toBe(EXIT.ok);
    expect(stepLosses(plain)).toEqual(stepLosses(out));
    expect(summaryValues(join(plain, "tb")).some((v) => v.fields.has(4))).toBe(false);
  }, 180_000);
});
