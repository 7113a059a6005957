import * as tf from "@tensorflow/tfjs";
import { Rng, loadTorchStateDict } from "@sit/core";
import {
  TEST_BACKENDS,
  expectClose,
  loadFixture,
  maxAbsoluteError,
  withBackend,
} from "@sit/testing";
import { describe, expect, it } from "vitest";
import { sitProjectionHead } from "./sit-projection-head";

const BN_BUFFERS = ["mlp.1", "mlp.4", "mlp.7"];

/**
 * Error relative to the tensor's scale (max |a−b| / max |b|). The head ends in a BatchNorm over a
 * batch of 8, so entries near zero carry absolute float32 noise: PyTorch itself, rerun in float64
 * on the fixture's inputs, differs from the fixture by 1.5e-6 absolute (2.9e-4 by the element-wise
 * metric of expectClose) while the outputs reach 2.19. The scale-relative error is the meaningful one.
 */
function expectCloseToScale(
  actual: Float32Array,
  expected: Float32Array,
  tol: number,
  label: string,
) {
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  const err = maxAbsoluteError(actual, expected) / scale;
  expect(
    err,
    `${label}: max |error| / max |reference| = ${err.toExponential(3)}`,
  ).toBeLessThanOrEqual(tol);
}

describe("sitProjectionHead", () => {
  it("has exactly SiT's CLSHead parameter names (as in sit_step.safetensors)", () => {
    const head = sitProjectionHead(32, 16, 48, Rng.seed(0));
    const fixture = loadFixture("sit_step.safetensors");
    const prefix = "student.cls_head.";
    const expected = Object.keys(fixture.tensors)
      .filter((k) => k.startsWith(prefix))
      .map((k) => k.slice(prefix.length))
      .sort();
    expect(
      head
        .namedParameters()
        .map(([n]) => n)
        .sort(),
    ).toEqual(expected);
    const bufferPrefix = "after.student_buffer.cls_head.";
    const expectedBuffers = Object.keys(fixture.tensors)
      .filter((k) => k.startsWith(bufferPrefix))
      .map((k) => k.slice(bufferPrefix.length));
    const buffers = head.namedBuffers().map(([n]) => n);
    for (const b of expectedBuffers) expect(buffers).toContain(b);
    // PyTorch also tracks the batch count of every BatchNorm.
    expect(buffers.filter((b) => b.endsWith("num_batches_tracked")).sort()).toEqual(
      BN_BUFFERS.map((p) => `${p}.num_batches_tracked`),
    );
    tf.dispose(Object.values(fixture.tensors));
    head.dispose();
  });

  for (const backend of TEST_BACKENDS) {
    it(`matches cls_head.safetensors in train mode: output and running statistics (${backend})`, async () => {
      await withBackend(backend, async () => {
        const { tensors } = loadFixture("cls_head.safetensors");
        const head = sitProjectionHead(48, 16, 64, Rng.seed(1));
        const weights = Object.fromEntries(
          Object.entries(tensors).filter(([k]) => k.startsWith("mlp.")),
        );
        const { missing, unexpected } = loadTorchStateDict(head, weights, { strict: false });
        expect(unexpected).toEqual([]);
        // Only the buffers are absent from the fixture (they start at PyTorch's defaults).
        expect(missing.sort()).toEqual(
          BN_BUFFERS.flatMap((p) => [
            `${p}.num_batches_tracked`,
            `${p}.running_mean`,
            `${p}.running_var`,
          ]).sort(),
        );
        head.train();
        const out = head.apply(tensors.input);
        const [got, want] = [await out.data(), await tensors.output.data()];
        expectCloseToScale(got as Float32Array, want as Float32Array, 1e-6, "output");
        expectClose(got, want, 2e-3, "output (element-wise)");
        const buffers = Object.fromEntries(head.namedBuffers());
        for (const p of BN_BUFFERS) {
          for (const s of ["running_mean", "running_var"]) {
            const got = (await buffers[`${p}.${s}`].data()) as Float32Array;
            const want = (await tensors[`buffer_after.${p}.${s}`].data()) as Float32Array;
            // Running means sit near zero: PyTorch in float64 is 2.4e-5 off element-wise, 1.4e-7 to scale.
            expectCloseToScale(got, want, 1e-6, `${p}.${s}`);
            expectClose(got, want, 1e-4, `${p}.${s} (element-wise)`);
          }
          expect(Array.from(await buffers[`${p}.num_batches_tracked`].data())).toEqual([1]);
        }
        out.dispose();
        head.dispose();
        tf.dispose(Object.values(tensors));
      });
    });
  }

  it("accepts the (inDim, rng, { outDim, hidden }) form", () => {
    const head = sitProjectionHead(8, Rng.seed(2), { outDim: 4, hidden: 6 });
    expect(head.mlp.outFeatures).toBe(4);
    expect(head.stateDict()["mlp.3.weight"].shape).toEqual([6, 6]);
    head.dispose();
  });
});
