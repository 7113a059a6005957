import { readdirSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { FIXTURES_DIR } from "@sit/testing";
import { IOError } from "../errors";
import { parseSafetensors, serializeSafetensors } from "./safetensors";
import { loadSafetensors, readSafetensors, writeSafetensors } from "./safetensors-files";

describe("safetensors", () => {
  it("reads every reference fixture file", () => {
    const files = readdirSync(FIXTURES_DIR).filter((f) => f.endsWith(".safetensors"));
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const f of files) {
      const parsed = readSafetensors(join(FIXTURES_DIR, f));
      const names = Object.keys(parsed.tensors);
      expect(names.length, f).toBeGreaterThan(0);
      for (const n of names) {
        const t = parsed.tensors[n];
        expect(t.data.length, `${f}:${n}`).toBe(t.shape.reduce((a, b) => a * b, 1));
      }
    }
  });

  it("round-trips F32, I32 and BOOL tensors and metadata through a file", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-st-"));
    const a = tf.tensor([
      [1.5, -2],
      [3, 4.25],
    ]);
    const b = tf.tensor([7, -8, 9], [3], "int32");
    const c = tf.tensor([true, false], [2], "bool");
    const path = join(dir, "x.safetensors");
    writeSafetensors(path, { a, b, c }, { note: "hello" });
    const back = loadSafetensors(path);
    expect(back.metadata).toEqual({ note: "hello" });
    expect(back.tensors.a.shape).toEqual([2, 2]);
    expect(Array.from(back.tensors.a.dataSync())).toEqual([1.5, -2, 3, 4.25]);
    expect(back.tensors.b.dtype).toBe("int32");
    expect(Array.from(back.tensors.b.dataSync())).toEqual([7, -8, 9]);
    expect(Array.from(back.tensors.c.dataSync())).toEqual([1, 0]);
    tf.dispose([a, b, c, ...Object.values(back.tensors)]);
  });

  it("reads I64 and U8 raw tensors", () => {
    const bytes = serializeSafetensors({
      i: { dtype: "I64", shape: [2], data: BigInt64Array.of(5n, -6n) },
      u: { dtype: "U8", shape: [3], data: Uint8Array.of(0, 128, 255) },
    });
    const p = parseSafetensors(bytes);
    expect(Array.from(p.tensors.i.data as BigInt64Array)).toEqual([5n, -6n]);
    expect(Array.from(p.tensors.u.data as Uint8Array)).toEqual([0, 128, 255]);
  });

  it("refuses a truncated file with a clear error naming the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-st-"));
    const full = serializeSafetensors({
      w: { dtype: "F32", shape: [4], data: Float32Array.of(1, 2, 3, 4) },
    });
    const path = join(dir, "cut.safetensors");
    writeFileSync(path, full.subarray(0, full.length - 3));
    expect(() => readSafetensors(path)).toThrow(IOError);
    expect(() => readSafetensors(path)).toThrow(/cut\.safetensors: truncated safetensors file/);
    expect(() => parseSafetensors(full.subarray(0, 5))).toThrow(/truncated/);
  });

  it("refuses negative, reversed and overlapping data_offsets, naming the tensors", () => {
    /** A file with a hand-written header over 16 data bytes (four float32 values). */
    const file = (entries: Record<string, unknown>) => {
      const header = Buffer.from(JSON.stringify(entries), "utf8");
      const out = new Uint8Array(8 + header.length + 16);
      new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
      out.set(header, 8);
      out.set(new Uint8Array(Float32Array.of(1, 2, 3, 4).buffer), 8 + header.length);
      return out;
    };
    const f32 = (offsets: [number, number]) => ({
      dtype: "F32",
      shape: [2],
      data_offsets: offsets,
    });
    // The well-formed file reads; each forged one is refused.
    const ok = parseSafetensors(file({ a: f32([0, 8]), b: f32([8, 16]) }));
    expect(Array.from(ok.tensors.b.data as Float32Array)).toEqual([3, 4]);
    expect(() => parseSafetensors(file({ a: f32([-8, 0]) }), "neg.safetensors")).toThrow(
      /neg\.safetensors: tensor "a": data_offsets \[-8, 0\] must be two integers 0 ≤ begin ≤ end/,
    );
    expect(() => parseSafetensors(file({ a: f32([8.5, 16.5]) }))).toThrow(/must be two integers/);
    expect(() =>
      parseSafetensors(file({ a: { dtype: "F32", shape: [0], data_offsets: [8, 0] } })),
    ).toThrow(/data_offsets \[8, 0\] must be two integers 0 ≤ begin ≤ end/);
    expect(() => parseSafetensors(file({ a: f32([0, 8]), b: f32([4, 12]) }), "x")).toThrow(
      /x: tensors "a" \[0, 8\) and "b" \[4, 12\) overlap in the data section/,
    );
    expect(() => parseSafetensors(file({ a: f32([8, 16]), b: f32([8, 16]) }))).toThrow(/overlap/);
    // Empty tensors occupy no bytes and overlap nothing.
    const empty = { dtype: "F32", shape: [0], data_offsets: [8, 8] };
    const all = { dtype: "F32", shape: [4], data_offsets: [0, 16] };
    expect(Object.keys(parseSafetensors(file({ a: all, e: empty })).tensors)).toEqual(["a", "e"]);
  });
});
