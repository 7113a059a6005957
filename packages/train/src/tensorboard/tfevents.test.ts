import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { StepEvent } from "../events";
import { TensorBoardSink } from "../sinks/tensorboard";
import { crc32c, maskedCrc32c } from "./crc32c";

// ---- An independent reader, written from the format's description, sharing no code with the writer.

/** Bit-by-bit CRC-32C (no table), to check the table-driven implementation. */
function crc32cBitwise(bytes: Uint8Array): number {
  let crc = ~0 >>> 0;
  for (const b of bytes) {
    crc = (crc ^ b) >>> 0;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? ((crc >>> 1) ^ 0x82f63b78) >>> 0 : crc >>> 1;
  }
  return ~crc >>> 0;
}

function unmask(masked: number): number {
  const rot = (masked - 0xa282ead8 + 2 ** 32) % 2 ** 32;
  return ((rot << 15) | (rot >>> 17)) >>> 0;
}

type Field = { field: number; wire: number; value: bigint | Uint8Array | DataView };

function decodeMessage(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 1) {
      out.push({ field, wire, value: new DataView(buf.buffer, buf.byteOffset + pos, 8) });
      pos += 8;
    } else if (wire === 5) {
      out.push({ field, wire, value: new DataView(buf.buffer, buf.byteOffset + pos, 4) });
      pos += 4;
    } else if (wire === 2) {
      const len = Number(varint());
      out.push({ field, wire, value: buf.subarray(pos, pos + len) });
      pos += len;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  expect(pos).toBe(buf.length);
  return out;
}

interface DecodedEvent {
  wallTime?: number;
  step: number;
  fileVersion?: string;
  values: Record<string, number>;
  /** Every field of each summary value but its tag, by tag. */
  raw: Record<string, Field[]>;
}

function readTfEvents(bytes: Uint8Array): DecodedEvent[] {
  const events: DecodedEvent[] = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  while (pos < bytes.length) {
    const len = Number(dv.getBigUint64(pos, true));
    expect(unmask(dv.getUint32(pos + 8, true))).toBe(crc32cBitwise(bytes.subarray(pos, pos + 8)));
    const data = bytes.subarray(pos + 12, pos + 12 + len);
    expect(unmask(dv.getUint32(pos + 12 + len, true))).toBe(crc32cBitwise(data));
    pos += 12 + len + 4;
    const ev: DecodedEvent = { step: 0, values: {}, raw: {} };
    for (const f of decodeMessage(data)) {
      if (f.field === 1) ev.wallTime = (f.value as DataView).getFloat64(0, true);
      else if (f.field === 2) ev.step = Number(f.value as bigint);
      else if (f.field === 3) ev.fileVersion = new TextDecoder().decode(f.value as Uint8Array);
      else if (f.field === 5) {
        for (const v of decodeMessage(f.value as Uint8Array)) {
          expect(v.field).toBe(1);
          let tag = "";
          let value = Number.NaN;
          const fields = decodeMessage(v.value as Uint8Array);
          for (const g of fields) {
            if (g.field === 1) tag = new TextDecoder().decode(g.value as Uint8Array);
            if (g.field === 2) value = (g.value as DataView).getFloat32(0, true);
          }
          if (fields.some((g) => g.field === 2)) ev.values[tag] = value;
          ev.raw[tag] = fields.filter((g) => g.field !== 1);
        }
      } else throw new Error(`unexpected Event field ${f.field}`);
    }
    events.push(ev);
  }
  expect(pos).toBe(bytes.length);
  return events;
}

function stepEvent(step: number, loss: number): StepEvent {
  return {
    type: "step",
    step,
    epoch: 0,
    elapsedSec: step,
    wallTime: 1_700_000_000_000 + step * 1000,
    loss,
    terms: { contrastive: loss / 2, reconstruction: 0.1 },
    lr: 1e-4,
    wd: 0.04,
    momentum: 0.996,
    images: 64,
    imagesPerSec: 123.5,
    stepMs: 500,
    dataMs: 18,
    tensors: 42,
  };
}

describe("crc32c", () => {
  it("matches the standard check value crc32c('123456789') = 0xE3069283", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
  });

  it("matches the RFC 3720 (iSCSI) test vectors", () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  });

  it("agrees with a bitwise implementation on arbitrary data, and masks as TFRecord does", () => {
    const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919 + 13) & 0xff);
    expect(crc32c(data)).toBe(crc32cBitwise(data));
    expect(unmask(maskedCrc32c(data))).toBe(crc32cBitwise(data));
    expect(maskedCrc32c(data)).not.toBe(crc32c(data));
  });
});

describe("TensorBoardSink", () => {
  it("writes a tfevents file that an independent reader decodes: version first, then scalars", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-tb-"));
    const sink = new TensorBoardSink(dir);
    sink.onEvent(stepEvent(0, 2.5));
    sink.onEvent(stepEvent(1, 1.25));
    sink.onEvent({
      type: "monitor",
      step: 1,
      epoch: 0,
      elapsedSec: 2,
      wallTime: 1_700_000_002_000,
      metrics: { knn_top1: 0.731 },
      durationSec: 0.5,
    });
    sink.onEvent({ type: "warning", step: 1, epoch: 0, elapsedSec: 2, wallTime: 0, message: "x" });
    sink.close();

    const files = readdirSync(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^events\.out\.tfevents\.\d+\./);
    const events = readTfEvents(readFileSync(join(dir, files[0])));
    expect(events).toHaveLength(4);
    expect(events[0].fileVersion).toBe("brain.Event:2");
    expect(events[0].wallTime).toBeGreaterThan(1.6e9);
    expect(events[1].step).toBe(0);
    expect(events[1].wallTime).toBe(1_700_000_000);
    expect(events[2].step).toBe(1);
    expect(events[2].values).toEqual({
      "loss/total": 1.25,
      "loss/contrastive": 0.625,
      "loss/reconstruction": Math.fround(0.1),
      "schedule/lr": Math.fround(1e-4),
      "schedule/wd": Math.fround(0.04),
      "schedule/momentum": Math.fround(0.996),
      "perf/images_per_sec": 123.5,
      "perf/step_ms": 500,
      "perf/data_ms": 18,
      "perf/tensors": 42,
    });
    expect(events[3].values).toEqual({ "monitor/knn_top1": Math.fround(0.731) });
  });

  it("encodes steps beyond 2^31 as varints", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-tb-"));
    const sink = new TensorBoardSink(dir);
    sink.onEvent(stepEvent(3_000_000_000, 1));
    sink.close();
    const [file] = readdirSync(dir);
    expect(readTfEvents(readFileSync(join(dir, file)))[1].step).toBe(3_000_000_000);
  });
});

// ---- Images, text and hparams, decoded with the field numbers of TensorFlow's and TensorBoard's protos.

const utf8 = (b: unknown) => new TextDecoder().decode(b as Uint8Array);
const field = (fields: Field[], n: number) => fields.find((f) => f.field === n)?.value;
const sub = (fields: Field[], n: number) => decodeMessage(field(fields, n) as Uint8Array);

function oneFile(dir: string): DecodedEvent[] {
  const [file] = readdirSync(dir);
  return readTfEvents(readFileSync(join(dir, file)));
}

/** The plugin name and content of a summary value's metadata (field 9). */
function plugin(fields: Field[]): { name: string; content?: Uint8Array } {
  const data = sub(sub(fields, 9), 1);
  return { name: utf8(field(data, 1)), content: field(data, 2) as Uint8Array | undefined };
}

describe("TensorBoardSink: images, text and hparams", () => {
  it("writes a PNG as an image summary (height, width, colourspace, the bytes unchanged)", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-tb-"));
    const sink = new TensorBoardSink(dir);
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    sink.image("pictures/reconstruction", 40, { png, width: 300, height: 200 });
    sink.close();
    const ev = oneFile(dir)[1];
    expect(ev.step).toBe(40);
    const image = sub(ev.raw["pictures/reconstruction"], 4);
    expect(field(image, 1)).toBe(200n);
    expect(field(image, 2)).toBe(300n);
    expect(field(image, 3)).toBe(3n);
    expect([...(field(image, 4) as Uint8Array)]).toEqual([...png]);
    expect(() => new TensorBoardSink(dir).image("x", 0, { png, width: 0, height: 1 })).toThrow(
      /image\.width: expected .*got 0/,
    );
  });

  it("writes Markdown as a text-plugin summary (a scalar DT_STRING tensor)", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-tb-"));
    const sink = new TensorBoardSink(dir);
    const markdown = '    {\n      "recipe": "sit"\n    }';
    sink.text("config/run.json", markdown);
    sink.close();
    const fields = oneFile(dir)[1].raw["config/run.json"];
    expect(plugin(fields).name).toBe("text");
    const tensor = sub(fields, 8);
    expect(field(tensor, 1)).toBe(7n); // DT_STRING
    expect(decodeMessage(field(tensor, 2) as Uint8Array)).toEqual([]); // scalar shape
    expect(utf8(field(tensor, 8))).toBe(markdown);
  });

  it("writes hparams as the plugin's session start, and a session end only when the run completes or fails", () => {
    const run = (reason: "completed" | "signal" | "error") => {
      const dir = mkdtempSync(join(tmpdir(), "sit-tb-"));
      const sink = new TensorBoardSink(dir);
      sink.hparams(
        { recipe: "sit", "optim.baseLr": 5e-4, "backbone.checkpointBlocks": false },
        "g",
      );
      sink.onEvent({
        type: "end",
        reason,
        steps: 3,
        step: 2,
        epoch: 0,
        elapsedSec: 1,
        wallTime: 5e12,
      });
      sink.close();
      return oneFile(dir);
    };
    const events = run("completed");
    const start = events[1].raw["_hparams_/session_start_info"];
    const { name, content } = plugin(start);
    expect(name).toBe("hparams");
    const data = decodeMessage(content as Uint8Array);
    expect(field(data, 1)).toBe(0n); // plugin data version
    const info = sub(data, 3);
    const hparams = Object.fromEntries(
      info
        .filter((f) => f.field === 1)
        .map((f) => {
          const entry = decodeMessage(f.value as Uint8Array);
          const [v] = decodeMessage(field(entry, 2) as Uint8Array);
          const value =
            v.field === 2
              ? (v.value as DataView).getFloat64(0, true)
              : v.field === 3
                ? utf8(v.value)
                : v.value === 1n;
          return [utf8(field(entry, 1)), value];
        }),
    );
    expect(hparams).toEqual({
      recipe: "sit",
      "optim.baseLr": 5e-4,
      "backbone.checkpointBlocks": false,
    });
    expect(utf8(field(info, 4))).toBe("g");
    // Its tensor is the plugin's empty float vector: DT_FLOAT, shape [0].
    expect(field(sub(start, 8), 1)).toBe(1n);
    const end = decodeMessage(
      plugin(events[2].raw["_hparams_/session_end_info"]).content as Uint8Array,
    );
    const endInfo = sub(end, 4);
    expect(field(endInfo, 1)).toBe(1n); // STATUS_SUCCESS
    expect((field(endInfo, 2) as DataView).getFloat64(0, true)).toBe(5e9);
    const failed = run("error");
    const failedEnd = decodeMessage(
      plugin(failed[2].raw["_hparams_/session_end_info"]).content as Uint8Array,
    );
    expect(field(sub(failedEnd, 4), 1)).toBe(2n); // STATUS_FAILURE
    // An interrupted run stays open: the run that resumes it ends the session.
    expect(run("signal")).toHaveLength(2);
    const sink = new TensorBoardSink(mkdtempSync(join(tmpdir(), "sit-tb-")));
    expect(() => sink.hparams({ lr: Number.NaN })).toThrow(/values\.lr: expected a finite number/);
    expect(() => sink.hparams({ crop: [0.2, 1] as never })).toThrow(/values\.crop: .*got/);
  });
});
