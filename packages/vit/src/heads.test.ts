import * as tf from "@tensorflow/tfjs";
import { Rng, ShapeError } from "@sit/core";
import { describe, expect, it } from "vitest";
import { LinearClassifier, SitClassifier } from "./heads";
import { VisionTransformer } from "./vision-transformer";

describe("classification heads", () => {
  it("SitClassifier computes Linear(D,C)(GELU(Linear(2D,D)(concat(CLS, mean patch)))) with SiT's names", () => {
    const head = new SitClassifier(1, 1, { rng: Rng.seed(0) });
    expect(Object.keys(head.stateDict())).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);
    // weights chosen so the logit is 2·gelu(cls + mean(patches)) + 1
    head.fc1.weight.assign(tf.tensor2d([[1], [1]]));
    head.fc1.bias!.assign(tf.tensor1d([0]));
    head.fc2.weight.assign(tf.tensor2d([[2]]));
    head.fc2.bias!.assign(tf.tensor1d([1]));
    const cls = tf.tensor2d([[0.25], [-2]]);
    const patchTokens = tf.tensor3d([
      [[0.5], [1.0]],
      [[1.5], [0.5]],
    ]); // means 0.75 and 1.0
    const logits = head.apply({ cls, patchTokens });
    // torch.nn.functional.gelu(1.0) = 0.841344746068543, gelu(-1.0) = -0.15865525393145702
    const got = logits.dataSync();
    expect(got[0]).toBeCloseTo(2 * 0.841344746068543 + 1, 5);
    expect(got[1]).toBeCloseTo(2 * -0.15865525393145702 + 1, 5);
    expect(() => head.apply({ cls, patchTokens: tf.zeros([3, 2, 1]) as tf.Tensor3D })).toThrow(
      ShapeError,
    );
    tf.dispose([cls, patchTokens, logits]);
    head.dispose();
  });

  it("LinearClassifier maps the CLS token (or a ViT output) to logits", () => {
    const vit = new VisionTransformer({
      imgSize: 8,
      patchSize: 4,
      embedDim: 8,
      depth: 1,
      numHeads: 2,
      rng: Rng.seed(1),
    });
    const head = new LinearClassifier(8, 5, { rng: Rng.seed(2) });
    expect(Object.keys(head.stateDict())).toEqual(["linear.weight", "linear.bias"]);
    const images = tf.randomNormal([3, 8, 8, 3], 0, 1, "float32", 1);
    const out = vit.forward(images);
    const a = head.apply(out);
    const b = head.apply(out.cls);
    expect(a.shape).toEqual([3, 5]);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    expect(() => head.apply(tf.zeros([3, 7]))).toThrow(/expected a CLS tensor \[B, 8\]/);
    tf.dispose([images, out.cls, out.tokens, out.patchTokens, a, b]);
    vit.dispose();
    head.dispose();
  });

  it("learns a toy task: ViT + SitClassifier cross-entropy falls over a few SGD steps", () => {
    const rng = Rng.seed(3);
    const vit = new VisionTransformer({
      imgSize: 8,
      patchSize: 4,
      embedDim: 16,
      depth: 2,
      numHeads: 2,
      rng,
    });
    const head = new SitClassifier(16, 2, { rng });
    // class 1 images are brighter: a pattern the model can pick up in a few steps
    const labels = [0, 1, 0, 1, 1, 0, 1, 0];
    const images = tf.tidy(() =>
      tf.add(
        tf.randomNormal([8, 8, 8, 3], 0, 0.5, "float32", 4),
        tf.tensor4d(labels, [8, 1, 1, 1]),
      ),
    );
    const onehot = tf.oneHot(tf.tensor1d(labels, "int32"), 2);
    const opt = tf.train.adam(3e-3);
    const params = [...vit.parameters(), ...head.parameters()];
    const step = () =>
      tf.tidy(
        () =>
          opt
            .minimize(
              () =>
                tf.losses.softmaxCrossEntropy(onehot, head.apply(vit.forward(images))) as tf.Scalar,
              true,
              params,
            )!
            .dataSync()[0],
      );
    const first = step();
    let last = first;
    for (let i = 0; i < 20; i++) last = step();
    expect(last).toBeLessThan(first * 0.7);
    tf.dispose([images, onehot]);
    opt.dispose();
    vit.dispose();
    head.dispose();
  });
});
