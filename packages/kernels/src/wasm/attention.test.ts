import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { expectClose, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { multiHeadAttention, packedSelfAttention } from "../attention";
import { portableKernels } from "../portable";
import { listKernelOverrides } from "../registry";
import { randomTensor } from "../testing/finite-difference";
import { batchMatMulBatchLast } from "./attention";
import { setWasmKernels, wasmKernels } from "./register";

describe("wasm kernels", () => {
  it("are registered for wasm on import, and can be switched off and on", () => {
    const wasm = () => listKernelOverrides().filter((o) => o.backend === "wasm");
    expect(
      wasm()
        .map((o) => o.name)
        .sort(),
    ).toEqual(["gelu", "layerNorm", "linear", "multiHeadAttention", "packedSelfAttention"]);
    setWasmKernels(false);
    expect(wasm()).toEqual([]);
    setWasmKernels(true);
    setWasmKernels(true); // idempotent
    expect(wasm()).toHaveLength(5);
  });

  it("batchMatMulBatchLast equals a batched matMul (batch moved last)", async () => {
    await withBackend("wasm", () => {
      const rng = Rng.seed(20);
      const [g, m, k, n] = [5, 7, 4, 6];
      const a = randomTensor([g, m, k], rng);
      const b = randomTensor([g, k, n], rng);
      const ref = tf.matMul(a, b); // [g, m, n]
      const got = batchMatMulBatchLast(
        tf.transpose(a, [1, 2, 0]) as tf.Tensor3D,
        tf.transpose(b, [1, 0, 2]) as tf.Tensor3D,
      ); // [m, g, n]
      expectClose(tf.transpose(got, [1, 0, 2]), ref, 1e-5, "product");
      tf.dispose([a, b, ref, got]);
    });
  });

  // The shapes of ViT-Tiny/4 at 32 px (N = 65, hd = 64), at batch 2, and an odd small case.
  const cases: [string, number, number, number, number][] = [
    ["ViT-Tiny/4 sizes", 2, 65, 192, 3],
    ["small, uneven", 3, 5, 12, 4],
  ];

  it.each(cases)(
    "packedSelfAttention (%s) matches the portable kernel, forward and gradient",
    async (_, b, n, d, h) => {
      await withBackend("wasm", () => {
        const rng = Rng.seed(21 + n);
        const qkv = randomTensor([b, n, 3 * d], rng) as tf.Tensor3D;
        const dy = randomTensor([b, n, d], rng);
        const o = { numHeads: h, scale: (d / h) ** -0.5, returnProbabilities: true };
        const ours = wasmKernels.packedSelfAttention!(qkv, o);
        const ref = portableKernels.packedSelfAttention(qkv, o);
        expectClose(ours.output, ref.output, 1e-5, "output");
        expectClose(ours.probabilities!, ref.probabilities!, 1e-5, "probabilities");
        const noP = { ...o, returnProbabilities: false };
        const [gOurs] = tf.grads(
          (x) => wasmKernels.packedSelfAttention!(x as tf.Tensor3D, noP).output,
        )([qkv], dy);
        const [gRef] = tf.grads(
          (x) => portableKernels.packedSelfAttention(x as tf.Tensor3D, noP).output,
        )([qkv], dy);
        expectClose(gOurs, gRef, 1e-4, "d qkv");
        // the public function routes to the override on wasm
        expectClose(packedSelfAttention(qkv, { numHeads: h }).output, ref.output, 1e-5, "public");
        tf.dispose([qkv, dy, ours.output, ours.probabilities!, ref.output, ref.probabilities!]);
        tf.dispose([gOurs, gRef]);
      });
    },
  );

  it.each(cases)(
    "multiHeadAttention (%s, Nk ≠ Nq) matches the portable kernel, forward and gradients",
    async (_, b, n, d, h) => {
      await withBackend("wasm", () => {
        const rng = Rng.seed(31 + n);
        const q = randomTensor([b, n, d], rng) as tf.Tensor3D;
        const k = randomTensor([b, n + 3, d], rng) as tf.Tensor3D;
        const v = randomTensor([b, n + 3, d], rng) as tf.Tensor3D;
        const dy = randomTensor([b, n, d], rng);
        const o = { numHeads: h, scale: 0.3, returnProbabilities: true };
        const ours = wasmKernels.multiHeadAttention!(q, k, v, o);
        const ref = portableKernels.multiHeadAttention(q, k, v, o);
        expectClose(ours.output, ref.output, 1e-5, "output");
        expectClose(ours.probabilities!, ref.probabilities!, 1e-5, "probabilities");
        const noP = { ...o, returnProbabilities: false };
        const f =
          (impl: typeof portableKernels.multiHeadAttention) =>
          (qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor) =>
            impl(qi as tf.Tensor3D, ki as tf.Tensor3D, vi as tf.Tensor3D, noP).output;
        const gOurs = tf.grads(f(wasmKernels.multiHeadAttention!))([q, k, v], dy);
        const gRef = tf.grads(f(portableKernels.multiHeadAttention))([q, k, v], dy);
        for (let i = 0; i < 3; i++) expectClose(gOurs[i], gRef[i], 1e-4, `d ${"qkv"[i]}`);
        expectClose(
          multiHeadAttention(q, k, v, { numHeads: h, scale: 0.3 }).output,
          ref.output,
          1e-5,
          "public",
        );
        tf.dispose([q, k, v, dy, ours.output, ours.probabilities!, ref.output, ref.probabilities!]);
        tf.dispose([...gOurs, ...gRef]);
      });
    },
  );

  it("leaks no tensors in forward + backward on wasm", async () => {
    await withBackend("wasm", () => {
      const rng = Rng.seed(40);
      const qkv = tf.variable(randomTensor([2, 5, 12], rng));
      const before = tf.memory().numTensors;
      for (let i = 0; i < 2; i++) {
        tf.tidy(() => {
          const { grads } = tf.variableGrads(() => {
            const r = packedSelfAttention(qkv, { numHeads: 2, returnProbabilities: true });
            return tf.add(tf.sum(r.output), tf.sum(r.probabilities!));
          });
          expect(grads[qkv.name].shape).toEqual([2, 5, 12]);
        });
      }
      expect(tf.memory().numTensors).toBe(before);
      qkv.dispose();
    });
  });
});
