import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors";
import { Rng } from "../rng";
import { MLP } from "./mlp";

describe("MLP", () => {
  it("numbers layers like nn.Sequential (activations take an index)", () => {
    const mlp = new MLP(
      [
        { in: 4, out: 5, activation: "gelu" },
        { in: 5, out: 6, norm: "layer", activation: "relu", bias: false },
        { in: 6, out: 3 },
      ],
      { rng: Rng.seed(3) },
    );
    expect(mlp.namedParameters().map(([n]) => n)).toEqual([
      "0.weight",
      "0.bias",
      "2.weight",
      "3.weight",
      "3.bias",
      "5.weight",
      "5.bias",
    ]);
    const y = mlp.apply(tf.ones([2, 4]));
    expect(y.shape).toEqual([2, 3]);
    y.dispose();
    mlp.dispose();
  });

  it("rejects inconsistent blocks and unknown norms with the argument named", () => {
    const rng = Rng.seed(4);
    expect(
      () =>
        new MLP(
          [
            { in: 4, out: 5 },
            { in: 6, out: 2 },
          ],
          { rng },
        ),
    ).toThrow(/blocks\[1\]\.in: expected 5/);
    expect(() => new MLP([{ in: 4, out: 5, norm: "group" as never }], { rng })).toThrow(
      ConfigError,
    );
    expect(() => new MLP([], { rng })).toThrow(/blocks: expected a non-empty array/);
  });
});
