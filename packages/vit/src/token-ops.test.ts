import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { patchify } from "@sit/kernels";
import { TEST_BACKENDS, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { clsOf, embedTokens, patchTokensOf } from "./token-ops";

const rng = Rng.seed(9);
const randn = (shape: number[]) =>
  tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))), shape);

/** Value and gradients of Σ (f(inputs) · weights) by tfjs's autodiff, and the Identity kernels it ran. */
async function valueAndGrads(f: (...x: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[]) {
  let out: { value: number[]; grads: number[][] } | undefined;
  const profile = await tf.profile(() => {
    const { value, grads } = tf.tidy(() => {
      const probe = f(...inputs);
      const w = tf.tensor(
        Array.from({ length: probe.size }, (_, i) => Math.sin(i + 1)),
        probe.shape,
      );
      const g = tf.valueAndGrads((...x: tf.Tensor[]) => tf.sum(tf.mul(f(...x), w)) as tf.Scalar);
      return g(inputs);
    });
    out = {
      value: Array.from(value.dataSync()),
      grads: grads.map((t) => Array.from(t.dataSync())),
    };
    tf.dispose([value, ...grads]);
  });
  return { ...out!, identities: profile.kernels.filter((k) => k.name === "Identity").length };
}

function expectClose(a: number[], b: number[]) {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1e-6);
}

describe("ViT token ops (taped without saved tensors)", () => {
  for (const backend of TEST_BACKENDS) {
    it(`match the composed tfjs ops' values and gradients, and save nothing, on ${backend}`, async () => {
      await withBackend(backend, async () => {
        const [b, n, d] = [2, 4, 3];
        const before = tf.memory().numTensors;
        const patches = randn([b, n, d]);
        const cls = randn([1, 1, d]);
        const pos = randn([1, 1 + n, d]);
        const images = randn([b, 4, 6, 2]);
        const cases: [
          string,
          (...x: tf.Tensor[]) => tf.Tensor,
          (...x: tf.Tensor[]) => tf.Tensor,
          tf.Tensor[],
        ][] = [
          [
            "embedTokens",
            (p, c, e) => embedTokens(p as tf.Tensor3D, c, e),
            (p, c, e) => tf.add(tf.concat([tf.add(tf.zeros([b, 1, d]), c), p], 1), e),
            [patches, cls, pos],
          ],
          [
            "clsOf",
            (x) => clsOf(x as tf.Tensor3D),
            (x) => tf.reshape(tf.slice(x, [0, 0, 0], [b, 1, d]), [b, d]),
            [pos.tile([b, 1, 1])],
          ],
          [
            "patchTokensOf",
            (x) => patchTokensOf(x as tf.Tensor3D),
            (x) => tf.slice(x, [0, 1, 0], [b, n, d]),
            [pos.tile([b, 1, 1])],
          ],
          [
            // The patch embedding's patchify (@sit/kernels) is taped the same way.
            "patchify",
            (x) => patchify(x, 2),
            (x) =>
              tf.reshape(tf.transpose(tf.reshape(x, [b * 2, 2, 3, 4]), [0, 2, 1, 3]), [b, 6, 8]),
            [images],
          ],
        ];
        // The harness's own mul and sum save their inputs: that is the floor.
        const floor = (await valueAndGrads((x) => x, [patches])).identities;
        for (const [name, op, composed, inputs] of cases) {
          const got = await valueAndGrads(op, inputs);
          const want = await valueAndGrads(composed, inputs);
          expectClose(got.value, want.value);
          expect(got.grads.length, name).toBe(inputs.length);
          for (const [i, g] of got.grads.entries()) expectClose(g, want.grads[i]);
          expect(got.identities, name).toBe(floor);
          expect(want.identities, name).toBeGreaterThan(floor);
        }
        tf.dispose([patches, cls, pos, images, cases[1][3][0], cases[2][3][0]]);
        expect(tf.memory().numTensors).toBe(before);
      });
    });
  }
});
