import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { toTorchStateDict } from "@sit/core";
import { readSafetensors } from "@sit/core/node";
import { type SitRecipe, resolveBackbone, toOfficialKey } from "@sit/recipes";
import { loadCheckpointFile, listCheckpoints } from "@sit/train/node";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { readSitTorch, writeSitTorch } from "./commands/sit-torch";
import { EXIT } from "./io";
import { loadModel } from "./model";
import { python, torchMissing } from "./scale-out-support";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

// SiT.js → sit-torch → checkpoint.pth (tools/scale-out) → sit-torch → SiT.js.

/** Every tensor of two SiT.js checkpoints, bit for bit, and their optimiser step, groups and progress. */
async function expectSameCheckpoint(a: string, b: string): Promise<void> {
  const [x, y] = [await loadCheckpointFile(a), await loadCheckpointFile(b)];
  try {
    expect(Object.keys(y.state.tensors).sort()).toEqual(Object.keys(x.state.tensors).sort());
    for (const [k, t] of Object.entries(x.state.tensors)) {
      const u = y.state.tensors[k];
      expect(u.shape, k).toEqual(t.shape);
      expect(u.dtype, k).toBe(t.dtype);
      const [p, q] = [t.dataSync(), u.dataSync()];
      const bytes = (v: typeof p) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      expect(bytes(q).equals(bytes(p)), `${k} bit-identical`).toBe(true);
    }
    expect(y.state.meta.optimizer).toEqual(x.state.meta.optimizer);
    expect(y.state.meta.rngs).toEqual(x.state.meta.rngs);
    expect(y.state.meta.config).toEqual(x.state.meta.config);
    expect(y.state.meta.cli).toEqual(x.state.meta.cli);
    expect(y.progress).toEqual(x.progress);
  } finally {
    x.dispose();
    y.dispose();
  }
}

describe("sit-torch: sit export --format sit-torch, then sit import back", () => {
  const dir = tempDir("sit-torch-");
  const run = join(dir, "run");
  const exported = join(dir, "exported");

  beforeAll(async () => {
    // 3 steps: one epoch of 4 batches is not complete, so the step is inside an epoch.
    const r = await sit(
      "pretrain",
      "--config",
      writeConfig(dir, tinyConfig(run)),
      "--steps",
      "3",
      "-q",
    );
    expect(r.code, r.err).toBe(EXIT.ok);
    const e = await sit(
      "export",
      "--checkpoint",
      run,
      "--format",
      "sit-torch",
      "-o",
      exported,
      "-q",
    );
    expect(e.code, e.err).toBe(EXIT.ok);
  });

  it("writes the official names, PyTorch's optimizer numbering and the args", () => {
    const json = JSON.parse(readFileSync(join(exported, "state.json"), "utf8"));
    expect(json).toMatchObject({ format: "sit-torch", step: 3, epoch: 0, step_in_epoch: 3 });
    const names: string[] = json.param_names;
    const [reg, noReg] = json.optimizer.param_groups.map((g: { params: number[] }) => g.params);
    // Group 0 holds no bias and no 1-D tensor; group 1 only those; indices count up across both.
    expect([...reg, ...noReg]).toEqual(names.map((_, i) => i));
    for (const i of reg) expect(names[i].endsWith(".bias")).toBe(false);
    expect(reg.map((i: number) => names[i])).toContain("module.backbone.pos_embed");
    expect(noReg.map((i: number) => names[i])).toContain("module.head.mlp.1.weight");
    expect(json.optimizer.param_groups[1].weight_decay).toBe(0);
    expect(json.param_group_names).toEqual(["regularized", "not regularized"]);
    expect(Object.values(json.optimizer.state)).toEqual(names.map(() => ({ step: 3 })));
    expect(names.every((n) => /^module\.(backbone|head|head_recons)\./.test(n))).toBe(true);
    expect(json.args).toMatchObject({ lr: 0.02, lmbda: 5, batch_size: 16, epochs: 2, out_dim: 16 });
    // 28 px, patch 7, one channel, D 16: no official model; main.py cannot run it (train_ddp.py can).
    expect(json.official_differences.join(" ")).toMatch(/patch_size is 7/);
  });

  it("round-trips through checkpoint.pth bit-identically (weights, moments, step, generators)", async (ctx) => {
    if (torchMissing) {
      console.log(`skipped: ${torchMissing}`);
      ctx.skip();
    }
    const pth = join(dir, "pth", "checkpoint.pth");
    const a = await python("to_torch.py", exported, pth);
    expect(a.code, a.err).toBe(0);
    const back = join(dir, "back");
    const b = await python("from_torch.py", pth, back);
    expect(b.code, b.err).toBe(0);
    const again = join(dir, "again");
    const i = await sit("import", "--from", back, "--out", again, "-q");
    expect(i.code, i.err).toBe(EXIT.ok);
    const [orig] = listCheckpoints(join(run, "checkpoints")).slice(-1);
    const [copy] = listCheckpoints(join(again, "checkpoints"));
    expect(copy.step).toBe(3);
    await expectSameCheckpoint(orig.path, copy.path);
  });

  it("fails on a misnamed or mis-shaped tensor, naming it (PyTorch tools and sit import)", async (ctx) => {
    const cases: [string, (t: Record<string, tf.Tensor>) => void, RegExp][] = [
      [
        "renamed",
        (t) => {
          t["student.module.head.mlp.0.weights"] = t["student.module.head.mlp.0.weight"];
          delete t["student.module.head.mlp.0.weight"];
        },
        /head\.mlp\.0\.weight/,
      ],
      [
        "reshaped",
        (t) => {
          t["optimizer.state.0.exp_avg"] = t["optimizer.state.0.exp_avg"].reshape([-1]);
        },
        /state 0|optimizer\.state\.0/,
      ],
    ];
    for (const [what, change, named] of cases) {
      const { tensors, json } = readSitTorch(exported);
      change(tensors);
      const bad = join(dir, `bad-${what}`);
      writeSitTorch(bad, tensors, json);
      tf.dispose(Object.values(tensors));
      const i = await sit("import", "--from", bad, "--out", join(dir, `nope-${what}`), "-q");
      expect(i.code, what).not.toBe(EXIT.ok);
      expect(i.err, what).toMatch(named);
      if (torchMissing) continue;
      const p = await python("to_torch.py", bad, join(dir, `bad-${what}.pth`));
      expect(p.code, what).toBe(1);
      expect(p.err, what).toMatch(named);
    }
    if (torchMissing) {
      console.log(`PyTorch half skipped: ${torchMissing}`);
      ctx.skip();
    }
    // main.py cannot run this tiny 1-channel ViT/7: --official says so instead of packing it.
    const o = await python("to_torch.py", exported, join(dir, "official.pth"), "--official");
    expect(o.code).toBe(1);
    expect(o.err).toMatch(/--official: .*patch_size is 7/);
  });

  it("refuses a state whose tensors are not the ones its JSON names", async () => {
    const other = join(dir, "other");
    const e = await sit("export", "--checkpoint", run, "--format", "sit-torch", "-o", other, "-q");
    expect(e.code).toBe(EXIT.ok);
    const json = JSON.parse(readFileSync(join(other, "state.json"), "utf8"));
    json.tensors_sha256 = "0".repeat(64);
    writeFileSync(join(other, "state.json"), JSON.stringify(json));
    const i = await sit("import", "--from", other, "--out", join(dir, "nope"), "-q");
    expect(i.code).not.toBe(EXIT.ok);
    expect(i.err).toMatch(/SHA-256/);
  });
});

describe("an official SiT checkpoint.pth (no SiT.js record, args as an argparse.Namespace)", () => {
  it("comes back as a run: architecture from the weights, config from args, step from AdamW", async (ctx) => {
    if (torchMissing) {
      console.log(`skipped: ${torchMissing}`);
      ctx.skip();
    }
    const dir = tempDir("sit-torch-official-");
    const pth = join(dir, "checkpoint.pth");
    const expected = join(dir, "expected.safetensors");
    const made = await python("official_like.py", pth, expected);
    expect(made.code, made.err).toBe(0);
    const b = await python("from_torch.py", pth, join(dir, "back"));
    expect(b.code, b.err).toBe(0);
    expect(b.err).toMatch(/fp16_scaler dropped/);
    const run = join(dir, "run");
    const i = await sit("import", "--from", join(dir, "back"), "--out", run, "-q");
    expect(i.code, i.err).toBe(EXIT.ok);

    const model = await loadModel(run);
    try {
      expect(model.step).toBe(2);
      const recipe = model.recipe as SitRecipe;
      expect(resolveBackbone(recipe.config.backbone)).toMatchObject({
        imgSize: 32,
        patchSize: 16,
        embedDim: 192,
        depth: 12,
        numHeads: 3,
      });
      expect(recipe.config.projection).toEqual({ hidden: 64, outDim: 16 });
      expect(recipe.config.optim).toMatchObject({
        batchSize: 4,
        stepsPerEpoch: 2,
        epochs: 10,
        baseLr: 0.0005,
        warmupEpochs: 1,
        weightDecayEnd: 0.1,
      });
      expect(recipe.config.gmml).toMatchObject({ ratio: 0.5, replaceProb: 0.5, replaceRatio: 0.3 });
      // Every student and teacher tensor is the PyTorch one, bit for bit.
      const want = readSafetensors(expected).tensors;
      const nets = [
        ["student", recipe.student],
        ["teacher", recipe.teacher.module],
      ] as const;
      let n = 0;
      for (const [who, net] of nets) {
        const dict = toTorchStateDict(net);
        for (const [name, t] of Object.entries(dict)) {
          const w = want[`${who}.${toOfficialKey(name)}`];
          expect(w, name).toBeDefined();
          // BatchNorm's num_batches_tracked: int64 in PyTorch, int32 here.
          const e = w.dtype === "I64" ? Int32Array.from(w.data as BigInt64Array, Number) : w.data;
          const a = t.dataSync();
          const same = Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
            Buffer.from(e.buffer, e.byteOffset, e.byteLength),
          );
          expect(same, `${who} ${name} bit-identical`).toBe(true);
          n++;
        }
        tf.dispose(Object.values(dict));
      }
      expect(n).toBe(Object.keys(want).length);
    } finally {
      model.recipe.dispose();
    }
  });
});
