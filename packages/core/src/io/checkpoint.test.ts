import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { IOError } from "../errors";
import { parseCheckpoint, serializeCheckpoint } from "./checkpoint";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint-files";
import { writeSafetensors } from "./safetensors-files";

function sample() {
  return {
    tensors: {
      "model.w": tf.tensor2d([
        [1.5, -2],
        [3, 4.25],
      ]),
      "opt.step": tf.tensor1d([7], "int32"),
      mask: tf.tensor1d([true, false, true], "bool"),
    },
    meta: {
      step: 12,
      rng: { algorithm: "xoroshiro128plus", state: [1, 2, 3, 4] },
      lr: [0.1, 0.01],
    },
  };
}

describe("checkpoints", () => {
  it("round-trip tensors and JSON metadata, leaving no temporary file", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-ckpt-"));
    const path = join(dir, "run", "last.safetensors");
    const ck = sample();
    saveCheckpoint(path, ck);
    saveCheckpoint(path, ck); // overwrite in place
    expect(readdirSync(join(dir, "run"))).toEqual(["last.safetensors"]);
    const back = loadCheckpoint<typeof ck.meta>(path);
    expect(back.meta).toEqual(ck.meta);
    expect(Object.keys(back.tensors).sort()).toEqual(["mask", "model.w", "opt.step"]);
    expect(Array.from(back.tensors["model.w"].dataSync())).toEqual([1.5, -2, 3, 4.25]);
    expect(back.tensors["opt.step"].dtype).toBe("int32");
    expect(back.tensors.mask.dtype).toBe("bool");
    expect(Array.from(back.tensors.mask.dataSync())).toEqual([1, 0, 1]);
    tf.dispose([...Object.values(ck.tensors), ...Object.values(back.tensors)]);
  });

  it("as bytes both ways: the file saveCheckpoint writes is serializeCheckpoint's bytes", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-ckpt-"));
    const path = join(dir, "bytes.safetensors");
    const ck = sample();
    const bytes = serializeCheckpoint(ck);
    saveCheckpoint(path, ck);
    expect(new Uint8Array(readFileSync(path))).toEqual(bytes);
    const back = parseCheckpoint<typeof ck.meta>(bytes, "upload.safetensors");
    expect(back.meta).toEqual(ck.meta);
    expect(Array.from(back.tensors["model.w"].dataSync())).toEqual([1.5, -2, 3, 4.25]);
    const bad = bytes.slice();
    bad[bad.length - 1] ^= 1;
    expect(() => parseCheckpoint(bad, "upload.safetensors")).toThrow(
      /upload\.safetensors: corrupt checkpoint: SHA-256/,
    );
    expect(() => parseCheckpoint("x" as unknown as Uint8Array)).toThrow(
      /bytes: expected a Uint8Array/,
    );
    tf.dispose([...Object.values(ck.tensors), ...Object.values(back.tensors)]);
  });

  it("refuses a truncated file with an IOError naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-ckpt-"));
    const path = join(dir, "cut.safetensors");
    const ck = sample();
    saveCheckpoint(path, ck);
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 5));
    expect(() => loadCheckpoint(path)).toThrow(IOError);
    expect(() => loadCheckpoint(path)).toThrow(/cut\.safetensors: truncated/);
    tf.dispose(Object.values(ck.tensors));
  });

  it("refuses corrupt data, corrupt metadata and trailing garbage (checksum)", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-ckpt-"));
    const ck = sample();
    const good = join(dir, "good.safetensors");
    saveCheckpoint(good, ck);
    const bytes = readFileSync(good);
    const flipLast = Buffer.from(bytes);
    flipLast[flipLast.length - 1] ^= 0x01; // inside the data section
    writeFileSync(join(dir, "a.safetensors"), flipLast);
    expect(() => loadCheckpoint(join(dir, "a.safetensors"))).toThrow(
      /a\.safetensors: corrupt checkpoint/,
    );
    const text = bytes.toString("latin1").replace('\\"step\\":12', '\\"step\\":13');
    expect(text).not.toBe(bytes.toString("latin1"));
    writeFileSync(join(dir, "b.safetensors"), Buffer.from(text, "latin1"));
    expect(() => loadCheckpoint(join(dir, "b.safetensors"))).toThrow(
      /b\.safetensors: corrupt checkpoint/,
    );
    writeFileSync(join(dir, "c.safetensors"), Buffer.concat([bytes, Buffer.from([0, 0, 0, 0])]));
    expect(() => loadCheckpoint(join(dir, "c.safetensors"))).toThrow(IOError);
    tf.dispose(Object.values(ck.tensors));
  });

  it("refuses a plain safetensors file and a missing file", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-ckpt-"));
    const plain = join(dir, "plain.safetensors");
    const t = tf.ones([2]);
    writeSafetensors(plain, { t });
    expect(() => loadCheckpoint(plain)).toThrow(/plain\.safetensors: not a SiT checkpoint/);
    expect(() => loadCheckpoint(join(dir, "none.safetensors"))).toThrow(
      /cannot read .*none\.safetensors/,
    );
    expect(() =>
      saveCheckpoint(join(dir, "x"), { tensors: {}, meta: { f: () => 1, n: 1n } }),
    ).toThrow(/checkpoint\.meta/);
    t.dispose();
  });

  it("the checksum covers data_offsets: swapping two same-size tensors' offsets is refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-ckpt-"));
    const path = join(dir, "swap.safetensors");
    const a = tf.tensor1d([1, 2]);
    const b = tf.tensor1d([3, 4]);
    saveCheckpoint(path, { tensors: { a, b }, meta: { step: 1 } });
    const text = readFileSync(path).toString("latin1");
    const swapped = text
      .replace('"data_offsets":[0,8]', "@A@")
      .replace('"data_offsets":[8,16]', '"data_offsets":[0,8]')
      .replace("@A@", '"data_offsets":[8,16]');
    expect(swapped).not.toBe(text);
    writeFileSync(path, Buffer.from(swapped, "latin1"));
    expect(() => loadCheckpoint(path)).toThrow(/swap\.safetensors: corrupt checkpoint: SHA-256/);
    tf.dispose([a, b]);
  });

  it("still reads checkpoints whose checksum predates data_offsets (writer layout only)", () => {
    const dir = mkdtempSync(join(tmpdir(), "sit-ckpt-"));
    const a = Float32Array.of(1, 2);
    const b = Float32Array.of(3, 4);
    const metaJson = JSON.stringify({ step: 1 });
    // The checksum as files before this change recorded it: data, [name, dtype, shape], meta.
    const legacySum = (order: [string, Float32Array][]) =>
      createHash("sha256")
        .update(new Uint8Array(a.buffer))
        .update(new Uint8Array(b.buffer))
        .update(JSON.stringify(order.map(([n, d]) => [n, "F32", [d.length]])))
        .update(metaJson)
        .digest("hex");
    const meta = {
      "sit.format": "sit-checkpoint/1",
      "sit.meta": metaJson,
      "sit.sha256": legacySum([
        ["a", a],
        ["b", b],
      ]),
    };
    const path = join(dir, "old.safetensors");
    writeSafetensors(
      path,
      { a: { dtype: "F32", shape: [2], data: a }, b: { dtype: "F32", shape: [2], data: b } },
      meta,
    );
    const back = loadCheckpoint(path);
    expect(Array.from(back.tensors.b.dataSync())).toEqual([3, 4]);
    tf.dispose(Object.values(back.tensors));
    // The same old checksum with the offsets swapped: not the writer's layout, refused.
    const text = readFileSync(path).toString("latin1");
    const swapped = text
      .replace('"data_offsets":[0,8]', "@A@")
      .replace('"data_offsets":[8,16]', '"data_offsets":[0,8]')
      .replace("@A@", '"data_offsets":[8,16]');
    writeFileSync(path, Buffer.from(swapped, "latin1"));
    expect(() => loadCheckpoint(path)).toThrow(/corrupt checkpoint/);
  });
});
