import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

describe("sit pretrain --precision", () => {
  it("refuses mixed-f16 on a backend without shader-f16, naming the option, value and backend", async () => {
    const dir = tempDir();
    const configPath = writeConfig(dir, tinyConfig(join(dir, "run")));
    const r = await sit("pretrain", "--config", configPath, "--precision", "mixed-f16");
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(
      'precision: "mixed-f16" needs the webgpu backend with an adapter that has the shader-f16 feature, but the backend is cpu; use "f32" there',
    );
    const bad = await sit("pretrain", "--config", configPath, "--precision", "f8");
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--precision.*f8.*f32.*mixed-f16/s);
  }, 120_000);
});
