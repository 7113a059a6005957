import * as tf from "@tensorflow/tfjs";
import { Rng, toTorchStateDict } from "@sit/core";
import {
  TEST_BACKENDS,
  expectClose,
  gradientToTorch,
  loadFixture,
  loadFromTorch,
  withBackend,
} from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { VisionTransformer } from "./vision-transformer";

// vit.safetensors: a PyTorch ViT (img 32, patch 4, dim 48, depth 2, heads 3, erf GELU,
// LayerNorm eps 1e-6) with timm names, its outputs and the gradients of sum(tokens ⊙ weights).
// Tolerances are relative to each reference tensor's scale (see expectCloseToScale for why).
const fixture = loadFixture("vit.safetensors");
const t = fixture.tensors;
const config = fixture.metadata.config as Record<string, number>;
const PARAM_NAMES = Object.keys(t).filter((k) => !/^(input|output\.|grad\.|loss\.)/.test(k));
afterAll(() => tf.dispose(Object.values(t)));

function buildModel(): VisionTransformer {
  return new VisionTransformer({
    imgSize: config.img,
    patchSize: config.patch,
    inChans: config.chans,
    embedDim: config.dim,
    depth: config.depth,
    numHeads: config.heads,
    rng: Rng.seed(0),
  });
}

const nchwToNhwc = (x: tf.Tensor) => tf.transpose(x, [0, 2, 3, 1]);

describe.each(TEST_BACKENDS)("VisionTransformer parity with PyTorch on %s", (backend) => {
  it("matches output.tokens and output.last_attention within 1e-5", async () => {
    await withBackend(backend, () => {
      const model = buildModel().eval();
      loadFromTorch(model, t);
      const input = nchwToNhwc(t.input);
      const out = model.forward(input, { attentions: true });
      expectClose(out.tokens, t["output.tokens"], 1e-5, "output.tokens");
      expect(out.attentions).toHaveLength(config.depth);
      expectClose(
        out.attentions![config.depth - 1],
        t["output.last_attention"],
        1e-5,
        "last_attention",
      );
      // cls / patchTokens are the two parts of tokens
      const tokens = t["output.tokens"];
      const [b, n1, d] = tokens.shape;
      expectClose(out.cls, tokens.slice([0, 0, 0], [b, 1, d]).reshape([b, d]), 1e-5, "cls");
      expectClose(out.patchTokens, tokens.slice([0, 1, 0], [b, n1 - 1, d]), 1e-5, "patchTokens");
      tf.dispose([input, out.tokens, out.cls, out.patchTokens, ...out.attentions!]);
      model.dispose();
    });
  });

  it.each([
    ["", false],
    [" with gradient checkpointing", true],
  ])(
    "matches every grad.* (all parameters and the input) within 1e-4%s",
    async (_, checkpointBlocks) => {
      await withBackend(backend, () => {
        const model = buildModel();
        loadFromTorch(model, t);
        const input = tf.variable(nchwToNhwc(t.input));
        const params = model.namedParameters();
        const { value, grads } = tf.variableGrads(
          () =>
            tf.sum(
              tf.mul(model.forward(input, { checkpointBlocks }).tokens, t["loss.weights"]),
            ) as tf.Scalar,
          [input, ...params.map(([, p]) => p)],
        );
        for (const [name, p] of params) {
          const ours = gradientToTorch(model, name, grads[p.name]);
          expectClose(ours, t[`grad.${name}`], 1e-4, `grad.${name}`);
          ours.dispose();
        }
        const gradInput = nchwToNhwc(t["grad.input"]);
        expectClose(grads[input.name], gradInput, 1e-4, "grad.input");
        tf.dispose([value, gradInput, input, ...Object.values(grads)]);
        model.dispose();
      });
    },
  );
});

describe("VisionTransformer state dict", () => {
  it("exports exactly the fixture's names, in PyTorch's order", () => {
    const model = buildModel();
    expect(Object.keys(model.stateDict())).toEqual(PARAM_NAMES);
    model.dispose();
  });

  it("round-trips PyTorch weights: import then export gives the fixture's tensors back", () => {
    const model = buildModel();
    loadFromTorch(model, t);
    const exported = toTorchStateDict(model);
    for (const name of PARAM_NAMES) {
      expect(exported[name].shape, name).toEqual(t[name].shape);
      expect(Array.from(exported[name].dataSync()), name).toEqual(Array.from(t[name].dataSync()));
    }
    // and ours → ours through a fresh model
    const other = buildModel();
    loadFromTorch(other, exported);
    for (const [name, p] of other.namedParameters())
      expect(Array.from(p.dataSync()), name).toEqual(
        Array.from(model.stateDict()[name].dataSync()),
      );
    tf.dispose(Object.values(exported));
    model.dispose();
    other.dispose();
  });
});
