import { describe, expect, it } from "vitest";
import { ConfigError } from "./errors";
import { isHostBackend } from "./host-backend";
import { pixelSourcesKernel, registerPixelSourcesKernel } from "./pixel-sources";

describe("pixel-sources seam", () => {
  it("registers one kernel per backend, refuses a second and unregisters", () => {
    const kernel = ((images) => images.clone()) as Parameters<typeof registerPixelSourcesKernel>[1];
    const remove = registerPixelSourcesKernel("test-backend", kernel);
    expect(pixelSourcesKernel("test-backend")).toBe(kernel);
    expect(() => registerPixelSourcesKernel("test-backend", kernel)).toThrow(ConfigError);
    remove();
    expect(pixelSourcesKernel("test-backend")).toBeUndefined();
    expect(() => registerPixelSourcesKernel("", kernel)).toThrow(/backend/);
    expect(() => registerPixelSourcesKernel("x", {} as never)).toThrow(/kernel/);
  });
});

describe("isHostBackend", () => {
  it("is true for the backends whose tensors live in host memory only", () => {
    expect(["cpu", "wasm"].map((b) => isHostBackend(b))).toEqual([true, true]);
    expect(["webgpu", "tensorflow", "webgl"].map((b) => isHostBackend(b))).toEqual([
      false,
      false,
      false,
    ]);
  });
});
