import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ShapeError } from "../errors";
import { Rng } from "../rng";
import { ProjectionHead } from "./mlp";

/** A small SiT-style projection head (Linear, BatchNorm and a BatchNorm without affine). */
const head683 = (rng: Rng) =>
  new ProjectionHead(
    [
      { in: 6, out: 8, norm: "batch", activation: "relu" },
      { in: 8, out: 8, norm: "batch", activation: "gelu" },
      { in: 8, out: 3, norm: "batch_noaffine", activation: null },
    ],
    { rng },
  );

describe("Module.loadStateDict", () => {
  it("rejects a wrong-shaped state dict, naming each entry with both shapes", () => {
    const head = head683(Rng.seed(0));
    const dict = { ...head.stateDict() };
    dict["mlp.0.weight"] = tf.zeros([8, 6]); // PyTorch layout handed to the native loader
    dict["mlp.4.bias"] = tf.zeros([7]);
    let error: unknown;
    try {
      head.loadStateDict(dict);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ShapeError);
    expect((error as Error).message).toBe(
      "loadStateDict: 2 mis-shaped entries: mlp.0.weight (expected [6,8], got [8,6]); mlp.4.bias (expected [8], got [7])",
    );
    tf.dispose([dict["mlp.0.weight"], dict["mlp.4.bias"]]);
    head.dispose();
  });

  it("round-trips its own state dict and reports missing/unexpected names", () => {
    const a = head683(Rng.seed(1));
    const b = head683(Rng.seed(2));
    b.loadStateDict(a.stateDict());
    expect(Array.from(b.stateDict()["mlp.3.weight"].dataSync())).toEqual(
      Array.from(a.stateDict()["mlp.3.weight"].dataSync()),
    );
    const { "mlp.7.running_var": _dropped, ...partial } = a.stateDict();
    expect(() => b.loadStateDict(partial)).toThrow(/missing keys: mlp\.7\.running_var/);
    expect(b.loadStateDict(partial, { strict: false }).missing).toEqual(["mlp.7.running_var"]);
    a.dispose();
    b.dispose();
  });
});
