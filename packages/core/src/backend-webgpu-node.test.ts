import { describe, expect, it } from "vitest";
import { dawnFlags } from "./backend-webgpu-node";

describe("SIT_DAWN_TOGGLES", () => {
  it("becomes one enable-dawn-features flag for Dawn's create(); unset or empty gives none", () => {
    expect(dawnFlags(undefined)).toEqual([]);
    expect(dawnFlags(" , ")).toEqual([]);
    expect(dawnFlags("vulkan_enable_f16_on_nvidia")).toEqual([
      "enable-dawn-features=vulkan_enable_f16_on_nvidia",
    ]);
    expect(dawnFlags(" allow_unsafe_apis , vulkan_enable_f16_on_nvidia")).toEqual([
      "enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia",
    ]);
    expect(dawnFlags("vulkan_enable_f16_on_nvidia,-timestamp_quantization")).toEqual([
      "enable-dawn-features=vulkan_enable_f16_on_nvidia",
      "disable-dawn-features=timestamp_quantization",
    ]);
    expect(dawnFlags("-timestamp_quantization")).toEqual([
      "disable-dawn-features=timestamp_quantization",
    ]);
  });

  it("rejects what is not a toggle name, naming the variable and the value", () => {
    expect(() => dawnFlags("vulkan_enable_f16_on_nvidia;rm")).toThrow(
      /SIT_DAWN_TOGGLES: expected comma-separated Dawn toggle names .*got "vulkan_enable_f16_on_nvidia;rm"/,
    );
    expect(() => dawnFlags("Enable-F16")).toThrow(/got "Enable-F16"/);
    expect(() => dawnFlags("--x")).toThrow(/got "--x"/);
  });
});
