import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { Block } from "./block";
import { VisionTransformer, vitSmall, vitTiny } from "./vision-transformer";

const small = (extra: Partial<ConstructorParameters<typeof VisionTransformer>[0]> = {}) =>
  new VisionTransformer({
    imgSize: 16,
    patchSize: 4,
    embedDim: 24,
    depth: 3,
    numHeads: 2,
    rng: Rng.seed(5),
    ...extra,
  });

describe("VisionTransformer configuration", () => {
  it("builds SiT's presets with timm's parameter counts (backbone, no head)", () => {
    const tiny = vitTiny({ rng: Rng.seed(0) });
    expect([tiny.embedDim, tiny.depth, tiny.numHeads, tiny.patchSize]).toEqual([192, 12, 3, 16]);
    expect(tiny.numParameters()).toBe(5_524_416); // timm vit_tiny_patch16_224 minus its head
    expect(tiny.blocks[0].norm1.eps).toBe(1e-6);
    expect(tiny.blocks[0].attn.qkv.bias).not.toBeNull();
    tiny.dispose();
    const s = vitSmall({ rng: Rng.seed(0) });
    expect(s.numParameters()).toBe(21_665_664); // timm vit_small_patch16_224 minus its head
    s.dispose();
  });

  it("raises the drop-path rate linearly from 0 to dropPathRate over the blocks", () => {
    const m = small({ depth: 5, dropPathRate: 0.2 });
    expect(m.blocks.map((b) => b.dropPath)).toEqual([0, 0.05, 0.1, 0.15000000000000002, 0.2]);
    m.dispose();
  });

  it("rejects bad configurations with the argument's name", () => {
    expect(() => small({ depth: 0 })).toThrow(ConfigError);
    expect(() => small({ depth: 0 })).toThrow(/depth: expected an integer in \[1, ∞\), got 0/);
    expect(() => small({ checkpointBlocks: 4 })).toThrow(
      /checkpointBlocks: expected an integer in \[0, 3\], got 4/,
    );
    expect(() => small({ numHeads: 5 })).toThrow(
      /numHeads: expected a divisor of embedDim 24, got 5/,
    );
    expect(() => small({ imgSize: 18 })).toThrow(
      /imgSize: expected a multiple of patchSize 4, got 18/,
    );
    expect(() => small({ dropPathRate: 1 })).toThrow(/dropPathRate/);
    expect(() => new VisionTransformer({} as never)).toThrow(/config.rng: expected an Rng/);
  });
});

describe("VisionTransformer.forward", () => {
  it("rejects images with the wrong channel count, size or layout", () => {
    const m = small();
    const wrongChannels = tf.zeros([1, 16, 16, 1]);
    expect(() => m.forward(wrongChannels)).toThrow(ShapeError);
    expect(() => m.forward(wrongChannels)).toThrow(
      /images: expected 3 channels \(NHWC, last axis\), got shape \[1,16,16,1\]/,
    );
    const notDivisible = tf.zeros([1, 18, 16, 3]);
    expect(() => m.forward(notDivisible)).toThrow(/divisible by the patch size 4, got 18×16/);
    const nchw = tf.zeros([1, 3, 16]);
    expect(() => m.forward(nchw)).toThrow(/float32 NHWC tensor/);
    const ok = tf.zeros([1, 16, 16, 3]);
    expect(() => m.forward(ok, { intermediates: [3] })).toThrow(/intermediates\[0\]/);
    tf.dispose([wrongChannels, notDivisible, nchw, ok]);
    m.dispose();
  });

  it("returns intermediates (raw or normalised) and every block's attention", () => {
    const m = small().eval();
    const images = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 1);
    const raw = m.forward(images, { intermediates: [0, -1], attentions: true });
    expect(raw.intermediates!.map((t) => t.shape)).toEqual([
      [2, 17, 24],
      [2, 17, 24],
    ]);
    expect(raw.attentions!.map((t) => t.shape)).toEqual([
      [2, 2, 17, 17],
      [2, 2, 17, 17],
      [2, 2, 17, 17],
    ]);
    // rows of attention probabilities sum to one
    const rowSums = tf.sum(raw.attentions![2], -1);
    expect(tf.max(tf.abs(tf.sub(rowSums, 1))).dataSync()[0]).toBeLessThan(1e-5);
    const normed = m.forward(images, { intermediates: [2], normalizeIntermediates: true });
    // the last block's output, normalised, is the model's output
    expect(Array.from(normed.intermediates![0].dataSync())).toEqual(
      Array.from(normed.tokens.dataSync()),
    );
    expect(tf.max(tf.abs(tf.sub(raw.intermediates![1], raw.tokens))).dataSync()[0]).toBeGreaterThan(
      1e-3,
    );
    // "last": only the last block's map, the same numbers (what attention-guided masking reads).
    const last = m.forward(images, { attentions: "last" });
    expect(last.attentions!.map((t) => t.shape)).toEqual([[2, 2, 17, 17]]);
    expect(Array.from(last.attentions![0].dataSync())).toEqual(
      Array.from(raw.attentions![2].dataSync()),
    );
    tf.dispose([images, rowSums, raw as never, normed as never, last as never]);
    m.dispose();
  });

  it("drops whole residual branches per sample in train mode, scaled by 1/keep, and never in eval mode", () => {
    const rng = Rng.seed(9);
    const block = new Block(8, 2, { dropPath: 0.5, rng });
    const x = tf.randomNormal([16, 5, 8], 0, 1, "float32", 2);
    const trained = block.apply(x, { rng: Rng.seed(10) }).output;
    block.eval();
    const evalOut = block.apply(x).output;
    // Rebuild the four possible outcomes per sample from the block's own branches (eval mode).
    const attn = (h: tf.Tensor) =>
      block.attn.apply(
        tf.tidy(() => {
          const { mean, variance } = tf.moments(h, -1, true);
          return h
            .sub(mean)
            .mul(tf.rsqrt(variance.add(1e-6)))
            .mul(block.norm1.weight)
            .add(block.norm1.bias);
        }),
      ).output;
    const mlp = (h: tf.Tensor) =>
      block.mlp.apply(
        tf.tidy(() => {
          const { mean, variance } = tf.moments(h, -1, true);
          return h
            .sub(mean)
            .mul(tf.rsqrt(variance.add(1e-6)))
            .mul(block.norm2.weight)
            .add(block.norm2.bias);
        }),
      );
    const seen = new Set<string>();
    const out = trained.arraySync() as number[][][];
    for (let i = 0; i < 16; i++) {
      const xi = x.slice([i, 0, 0], [1, 5, 8]);
      let matched = "";
      for (const s1 of [0, 2])
        for (const s2 of [0, 2]) {
          const h = xi.add(attn(xi).mul(s1));
          const cand = h.add(mlp(h).mul(s2));
          const err = tf.max(tf.abs(cand.sub(tf.tensor([out[i]])))).dataSync()[0];
          if (err < 1e-4) matched = `${s1}${s2}`;
        }
      expect(matched, `sample ${i}`).not.toBe("");
      seen.add(matched);
    }
    expect(seen.size).toBeGreaterThan(2); // both dropped and kept branches occur
    const full = x.add(attn(x));
    const expectedEval = full.add(mlp(full));
    expect(tf.max(tf.abs(evalOut.sub(expectedEval))).dataSync()[0]).toBeLessThan(1e-5);
    expect(() => block.train().apply(x)).toThrow(/options.rng: expected an Rng/);
    block.dispose();
  });
});

describe.each(TEST_BACKENDS)("VisionTransformer training step on %s", (backend) => {
  it("gives the same loss, gradients and attention maps with and without checkpointing (drop path on)", async () => {
    await withBackend(backend, () => {
      const m = small({ dropPathRate: 0.5 });
      const images = tf.randomNormal([4, 16, 16, 3], 0, 1, "float32", 7);
      const run = (checkpointBlocks: boolean | number) =>
        tf.tidy(() => {
          let attention: tf.Tensor | undefined;
          const { value, grads } = tf.variableGrads(() => {
            const out = m.forward(images, { rng: Rng.seed(8), checkpointBlocks, attentions: true });
            attention = tf.keep(out.attentions![1]);
            return tf.mean(tf.square(out.tokens)) as tf.Scalar;
          });
          const flat = tf.concat(m.parameters().map((p) => grads[p.name].flatten()));
          return { value, flat, attention: attention! };
        });
      const plain = run(false);
      // Every block recomputed, and only the first (partial recomputation).
      for (const setting of [true, 1]) {
        const ckpt = run(setting);
        expect(ckpt.value.dataSync()[0]).toBeCloseTo(plain.value.dataSync()[0], 6);
        expect(tf.max(tf.abs(tf.sub(ckpt.flat, plain.flat))).dataSync()[0]).toBeLessThan(1e-6);
        expect(tf.max(tf.abs(tf.sub(ckpt.attention, plain.attention))).dataSync()[0]).toBeLessThan(
          1e-6,
        );
        tf.dispose([ckpt.value, ckpt.flat, ckpt.attention]);
      }
      tf.dispose([images, plain.value, plain.flat, plain.attention]);
      m.dispose();
    });
  });

  it.each([
    ["", false],
    [", checkpointed blocks", true],
    [", the first block recomputed", 1],
  ] as [string, boolean | number][])(
    "leaks no tensors across forward + backward steps (train mode, drop path, attentions%s)",
    async (_, checkpointBlocks) => {
      await withBackend(backend, () => {
        const m = small({ dropPathRate: 0.3, checkpointBlocks });
        const images = tf.randomNormal([2, 16, 16, 3], 0, 1, "float32", 4);
        const step = () =>
          tf.tidy(() => {
            const { value, grads } = tf.variableGrads(() => {
              const out = m.forward(images, { attentions: true, intermediates: [1] });
              return tf.add(
                tf.mean(tf.square(out.tokens)),
                tf.mean(out.attentions![0]),
              ) as tf.Scalar;
            });
            expect(Object.keys(grads)).toHaveLength(m.parameters().length);
            return value;
          });
        step().dispose();
        const before = tf.memory().numTensors;
        for (let i = 0; i < 3; i++) step().dispose();
        expect(tf.memory().numTensors).toBe(before);
        images.dispose();
        m.dispose();
      });
    },
  );
});
