import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "@sit/core/node";
import { expectClose } from "@sit/testing";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { backboneOf, loadModel } from "./model";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

/** timm's `VisionTransformer` state-dict names (no classifier head; qkv fused, as timm), for `depth` blocks. */
function timmNames(depth: number): string[] {
  const names = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"];
  for (let i = 0; i < depth; i++)
    for (const p of ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"])
      names.push(`blocks.${i}.${p}.weight`, `blocks.${i}.${p}.bias`);
  names.push("norm.weight", "norm.bias");
  return names.sort();
}

const PYTHON = process.env.SIT_TORCH_PYTHON ?? "/usr/bin/python3";
const CHECK = fileURLToPath(new URL("./torch/timm_vit_check.py", import.meta.url));

describe("sit export", () => {
  const dir = tempDir();
  const run = join(dir, "run");
  const file = join(dir, "backbone.safetensors");

  beforeAll(async () => {
    const r = await sit(
      "pretrain",
      "--config",
      writeConfig(dir, tinyConfig(run)),
      "--steps",
      "2",
      "-q",
    );
    expect(r.code).toBe(EXIT.ok);
    const e = await sit("export", "--checkpoint", run, "-o", file, "--backend", "cpu");
    expect(e.code).toBe(EXIT.ok);
  });

  it("writes the backbone with timm's names and PyTorch layouts", () => {
    const f = readSafetensors(file);
    expect(Object.keys(f.tensors).sort()).toEqual(timmNames(2));
    // Conv2d [D, C, p, p], Linear [out, in], pos_embed [1, 1 + N, D] — D 16, 1 channel, patch 7, 28 px.
    expect(f.tensors["patch_embed.proj.weight"].shape).toEqual([16, 1, 7, 7]);
    expect(f.tensors["blocks.0.attn.qkv.weight"].shape).toEqual([48, 16]);
    expect(f.tensors["blocks.1.mlp.fc1.weight"].shape).toEqual([64, 16]);
    expect(f.tensors.pos_embed.shape).toEqual([1, 17, 16]);
    expect(JSON.parse(f.metadata.architecture)).toMatchObject({
      embed_dim: 16,
      depth: 2,
      num_heads: 2,
      patch_size: 7,
    });
    expect(f.metadata.format).toBe("pt");
  });

  it("writes the whole SiT network with the SiT code's names when asked", async () => {
    const sitFile = join(dir, "sit.safetensors");
    const r = await sit(
      "export",
      "--checkpoint",
      run,
      "-o",
      sitFile,
      "--format",
      "sit",
      "--backend",
      "cpu",
    );
    expect(r.code).toBe(EXIT.ok);
    const names = Object.keys(readSafetensors(sitFile).tensors);
    expect(names).toEqual(expect.arrayContaining(timmNames(2)));
    expect(names.some((n) => n.startsWith("cls_head."))).toBe(true);
    expect(names.some((n) => n.startsWith("rec_head."))).toBe(true);
    expect(names.some((n) => n.startsWith("backbone."))).toBe(false);
  });

  it("loads into a timm-structured PyTorch ViT (strict) that computes our CLS features", async (ctx) => {
    if (!existsSync(PYTHON)) {
      console.log(`skipped: ${PYTHON} not found (set SIT_TORCH_PYTHON to a python with torch)`);
      ctx.skip();
    }
    const model = await loadModel(run);
    const backbone = backboneOf(model);
    backbone.eval();
    const images = tf.randomNormal([3, 28, 28, 1], 0, 1, "float32", 7) as tf.Tensor4D;
    const ours = tf.tidy(() => backbone.forward(images).cls);
    const input = join(dir, "images.f32");
    writeFileSync(input, Buffer.from((images.dataSync() as Float32Array).buffer));
    const p = spawnSync(PYTHON, [CHECK, file, input, "3,28,28,1"], { encoding: "utf8" });
    expect(p.status, p.stderr).toBe(0);
    const res = JSON.parse(p.stdout.trim().split("\n").pop() ?? "{}");
    if (!res.available) {
      console.log(`skipped: ${res.note}`);
      tf.dispose([images, ours]);
      model.recipe.dispose();
      ctx.skip();
    }
    expect(res.names).toEqual(timmNames(2));
    expectClose(ours, tf.tensor2d(res.cls, [3, 16]), 1e-4, "CLS features, ours vs PyTorch");
    tf.dispose([images, ours]);
    model.recipe.dispose();
  });
});
