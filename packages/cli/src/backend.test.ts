import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit } from "./test-support";

const saved = process.env.SIT_BACKEND;
afterEach(async () => {
  if (saved === undefined) delete process.env.SIT_BACKEND;
  else process.env.SIT_BACKEND = saved;
  await tf.setBackend("cpu");
});

async function backendOf(...argv: string[]): Promise<string> {
  const r = await sit("info", "--json", ...argv);
  expect(r.code, r.err).toBe(EXIT.ok);
  return JSON.parse(r.out).backend.name;
}

describe("sit: backend selection", () => {
  // cpu is what "auto" never picks while wasm can start, so these fail if SIT_BACKEND is ignored.
  it("honours SIT_BACKEND, and --backend takes precedence over it", async () => {
    process.env.SIT_BACKEND = "cpu";
    expect(await backendOf()).toBe("cpu");
    expect(await backendOf("--backend", "auto")).toBe("cpu");
    expect(await backendOf("--backend", "wasm")).toBe("wasm");
    delete process.env.SIT_BACKEND;
    expect(await backendOf()).not.toBe("cpu");
  });

  it("names SIT_BACKEND when its value is not a backend", async () => {
    process.env.SIT_BACKEND = "metal";
    const r = await sit("info", "--json");
    expect(r.code).toBe(EXIT.failure);
    expect(r.err).toMatch(/SIT_BACKEND: expected one of .* got "metal"/);
  });
});
