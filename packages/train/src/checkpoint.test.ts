import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IOError } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { listCheckpoints, loadCheckpointFile, resumeFrom, writeCheckpoint } from "./checkpoint";
import {
  type TrainProgress,
  checkpointFileName,
  parseCheckpointFolder,
  parseTrainCheckpoint,
  serializeTrainCheckpoint,
} from "./checkpoint-format";
import type { CheckpointIO } from "./checkpoint-io";

const tmp = () => mkdtempSync(join(tmpdir(), "sit-ckpt-"));

const progress = (step: number): TrainProgress => ({
  step,
  epoch: Math.floor(step / 10),
  stepInEpoch: step % 10,
  stepsPerEpoch: 10,
  images: step * 32,
  elapsedSec: step * 0.5,
});

async function writeSteps(dir: string, steps: number[], keepLast = 0): Promise<void> {
  for (const s of steps) {
    const tensors = { "student.w": tf.fill([2, 3], s), count: tf.scalar(s, "int32") };
    await writeCheckpoint(
      dir,
      "fake",
      progress(s),
      { tensors, meta: { step: s, note: "ok" } },
      {
        keepLast,
      },
    );
    tf.dispose(tensors);
  }
}

describe("writeCheckpoint / loadCheckpointFile", () => {
  it("round-trips tensors, recipe meta and progress", async () => {
    const dir = tmp();
    const before = tf.memory().numTensors;
    await writeSteps(dir, [7]);
    expect(tf.memory().numTensors).toBe(before);
    const ck = await loadCheckpointFile(join(dir, checkpointFileName(7)));
    expect(ck.progress).toEqual(progress(7));
    expect(ck.recipe).toBe("fake");
    expect(ck.state.meta).toEqual({ step: 7, note: "ok" });
    expect(ck.state.tensors["student.w"].shape).toEqual([2, 3]);
    expect(Array.from(ck.state.tensors["student.w"].dataSync())).toEqual([7, 7, 7, 7, 7, 7]);
    expect(ck.state.tensors.count.dtype).toBe("int32");
    ck.dispose();
    expect(ck.state.tensors.count.isDisposed).toBe(true);
  });

  it("deletes checkpoints beyond keepLast only after the new one is written", async () => {
    const dir = tmp();
    await writeSteps(dir, [1, 2, 3], 2);
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([2, 3]);
    const failing: CheckpointIO = {
      save: () => {
        throw new IOError("disk full");
      },
      load: () => {
        throw new Error("unused");
      },
    };
    const w = tf.scalar(1);
    await expect(
      writeCheckpoint(
        dir,
        "fake",
        progress(4),
        { tensors: { w }, meta: {} },
        { keepLast: 2, io: failing },
      ),
    ).rejects.toThrow(/disk full/);
    w.dispose();
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([2, 3]);
    expect(readFileSync(join(dir, "latest"), "utf8").trim()).toBe(checkpointFileName(3));
  });

  it("refuses a checkpoint that is not from @sit/train, naming it", async () => {
    const dir = tmp();
    const path = join(dir, checkpointFileName(1));
    const io: CheckpointIO = {
      save: () => {},
      load: () => ({ tensors: { w: tf.scalar(1) }, meta: { something: "else" } }),
    };
    const before = tf.memory().numTensors;
    await expect(loadCheckpointFile(path, io)).rejects.toThrow(
      new RegExp(`${path.replace(/[.]/g, "\\.")}: not a @sit/train checkpoint`),
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("resumeFrom", () => {
  it("finds the checkpoint that `latest` names", async () => {
    const dir = tmp();
    await writeSteps(dir, [3, 6]);
    const ck = await resumeFrom(dir);
    expect(ck?.progress.step).toBe(6);
    ck?.dispose();
  });

  it("resolves undefined for an empty or missing directory", async () => {
    expect(await resumeFrom(tmp())).toBeUndefined();
    expect(await resumeFrom(join(tmp(), "nope"))).toBeUndefined();
  });

  it("skips a truncated newest checkpoint with a warning naming it, and uses the previous one", async () => {
    const dir = tmp();
    await writeSteps(dir, [3, 6]);
    const newest = join(dir, checkpointFileName(6));
    truncateSync(newest, Math.floor(statSync(newest).size / 2));
    const warnings: string[] = [];
    const ck = await resumeFrom(dir, { onWarning: (m) => warnings.push(m) });
    expect(ck?.progress.step).toBe(3);
    ck?.dispose();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`skipping unreadable checkpoint ${newest}`);
    expect(warnings[0]).toMatch(/truncated/);
  });

  it("refuses a truncated checkpoint requested by path, naming it", async () => {
    const dir = tmp();
    await writeSteps(dir, [3]);
    const path = join(dir, checkpointFileName(3));
    truncateSync(path, statSync(path).size - 5);
    const err = await resumeFrom(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IOError);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toMatch(/truncated/);
  });

  it("detects a flipped byte in the data (checksum), naming the file", async () => {
    const dir = tmp();
    await writeSteps(dir, [3]);
    const path = join(dir, checkpointFileName(3));
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] ^= 0x40;
    writeFileSync(path, bytes);
    await expect(resumeFrom(path)).rejects.toThrow(path);
  });

  it("throws, naming every file, when no checkpoint in the directory is readable", async () => {
    const dir = tmp();
    await writeSteps(dir, [3, 6]);
    for (const s of [3, 6]) truncateSync(join(dir, checkpointFileName(s)), 10);
    const warnings: string[] = [];
    await expect(resumeFrom(dir, { onWarning: (m) => warnings.push(m) })).rejects.toThrow(
      /no readable checkpoint .*checkpoint-00000006\.safetensors, checkpoint-00000003\.safetensors/,
    );
    expect(warnings).toHaveLength(2);
  });

  it("falls back to the newest file when `latest` names a missing one", async () => {
    const dir = tmp();
    await writeSteps(dir, [3, 6]);
    writeFileSync(join(dir, "latest"), "checkpoint-00000009.safetensors\n");
    const warnings: string[] = [];
    const ck = await resumeFrom(dir, { onWarning: (m) => warnings.push(m) });
    expect(ck?.progress.step).toBe(6);
    ck?.dispose();
    expect(warnings[0]).toMatch(/latest names "checkpoint-00000009\.safetensors"/);
    expect(existsSync(join(dir, checkpointFileName(9)))).toBe(false);
  });
});

describe("checkpoint bytes (a web page's download and upload)", () => {
  it("serializeTrainCheckpoint gives the bytes of the file writeCheckpoint writes, and reads back", async () => {
    const dir = tmp();
    const state = {
      tensors: { "student.w": tf.tensor2d([[1, -2, 3]]), count: tf.scalar(7, "int32") },
      meta: { rng: [1, 2, 3, 4], cli: { recipe: "sit" } },
    };
    const versions = { "@sit/train": "0.1.0" };
    const path = await writeCheckpoint(dir, "sit", progress(12), state, { versions });
    const bytes = serializeTrainCheckpoint(
      { recipe: "sit", progress: progress(12), versions },
      state,
    );
    expect(new Uint8Array(readFileSync(path))).toEqual(bytes);

    const back = parseTrainCheckpoint(bytes, "run.safetensors");
    expect(back).toMatchObject({ path: "run.safetensors", recipe: "sit", versions });
    expect(back.progress).toEqual(progress(12));
    expect(back.state.meta).toEqual(state.meta);
    expect(Array.from(back.state.tensors["student.w"].dataSync())).toEqual([1, -2, 3]);
    back.dispose();
    expect(back.state.tensors["student.w"].isDisposed).toBe(true);
    // And a file the folder functions wrote is what the bytes reader takes.
    const fromFile = parseTrainCheckpoint(new Uint8Array(readFileSync(path)), path);
    expect(fromFile.progress.step).toBe(12);
    fromFile.dispose();
    tf.dispose(Object.values(state.tensors));
  });

  it("refuses bytes that are not a @sit/train checkpoint, or a bad progress, naming them", () => {
    const state = { tensors: { w: tf.scalar(1) }, meta: {} };
    const bad = { ...progress(3), step: -1 };
    expect(() => serializeTrainCheckpoint({ recipe: "sit", progress: bad }, state)).toThrow(
      /info\.progress: expected \{ step, epoch, stepInEpoch: integers ≥ 0/,
    );
    expect(() => parseTrainCheckpoint(new Uint8Array(4), "x.safetensors")).toThrow(
      /x\.safetensors: truncated/,
    );
    tf.dispose(state.tensors.w);
  });
});

describe("parseCheckpointFolder (a run's checkpoints/ folder as bytes)", () => {
  const filesOf = (dir: string) =>
    Object.fromEntries(
      readdirSync(dir).map((name) => [name, new Uint8Array(readFileSync(join(dir, name)))]),
    );

  it("picks what resumeFrom picks on disk: latest, else the newest readable, with warnings", async () => {
    const dir = tmp();
    await writeSteps(dir, [2, 4, 6]);
    const warnings: string[] = [];
    const onWarning = (m: string) => warnings.push(m);
    const picked = parseCheckpointFolder(filesOf(dir), { source: "run/checkpoints", onWarning });
    const onDisk = await resumeFrom(dir, { onWarning });
    expect(picked?.progress.step).toBe(6);
    expect(onDisk?.progress.step).toBe(6);
    expect(picked?.path).toBe("run/checkpoints/checkpoint-00000006.safetensors");
    picked?.dispose();
    onDisk?.dispose();

    // The newest is damaged and latest names a file that is not there: both fall back to step 4.
    truncateSync(join(dir, checkpointFileName(6)), 100);
    writeFileSync(join(dir, "latest"), "checkpoint-00000009.safetensors\n");
    const files = filesOf(dir);
    const fallback = parseCheckpointFolder(files, { source: "up", onWarning });
    expect(fallback?.progress.step).toBe(4);
    fallback?.dispose();
    expect(warnings).toEqual([
      'up/latest names "checkpoint-00000009.safetensors", which is not a checkpoint here; ignoring it',
      expect.stringMatching(
        /^skipping unreadable checkpoint up\/checkpoint-00000006\.safetensors: /,
      ),
    ]);
    const disk = await resumeFrom(dir, { onWarning: () => {} });
    expect(disk?.progress.step).toBe(4);
    disk?.dispose();
  });

  it("says when there is nothing, and refuses a folder of unreadable checkpoints", () => {
    expect(parseCheckpointFolder({ "notes.txt": new Uint8Array(3) })).toBeUndefined();
    const broken = { [checkpointFileName(3)]: new Uint8Array(12) };
    expect(() => parseCheckpointFolder(broken, { source: "x", onWarning: () => {} })).toThrow(
      /^x: no readable checkpoint \(all 1 failed: checkpoint-00000003\.safetensors\)$/,
    );
  });
});
