import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ShapeError } from "../errors";
import { Rng } from "../rng";
import { Module } from "./module";
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

describe("Module.namedParameters", () => {
  class Leaf extends Module {
    constructor(size: number) {
      super();
      this.registerParameter("weight", tf.zeros([size]));
    }
    grow(name: string): void {
      this.registerParameter(name, tf.ones([1]));
    }
  }
  class Tree extends Module {
    readonly leaf = this.registerModule("leaf", new Leaf(2));
    attach(name: string, m: Module): void {
      this.registerModule(name, m);
    }
  }

  it("lists parameters registered after an earlier call, at any depth; a caller's edits to the list do not stick", () => {
    const tree = new Tree();
    const names = () => tree.namedParameters().map(([n]) => n);
    expect(names()).toEqual(["leaf.weight"]);
    tree.namedParameters().pop();
    expect(names()).toEqual(["leaf.weight"]);
    tree.leaf.grow("extra");
    expect(names()).toEqual(["leaf.weight", "leaf.extra"]);
    tree.attach("more", new Leaf(3));
    expect(names()).toEqual(["leaf.weight", "leaf.extra", "more.weight"]);
    expect(tree.leaf.namedParameters("p").map(([n]) => n)).toEqual(["p.weight", "p.extra"]);
    tree.dispose();
  });
});
