import { afterEach, describe, expect, it } from "vitest";
import { withLogicalCores } from "./backend-wasm";

// A browser's navigator keeps hardwareConcurrency as a getter on its prototype (Navigator /
// WorkerNavigator); Node 20 has no navigator, so the test builds one the same way.
const g = globalThis as { navigator?: object };
const had = Object.getOwnPropertyDescriptor(globalThis, "navigator");

function browserLikeNavigator(cores: number): { hardwareConcurrency: number } {
  const proto = {};
  Object.defineProperty(proto, "hardwareConcurrency", { get: () => cores, configurable: true });
  return Object.create(proto);
}

describe("withLogicalCores (the threaded wasm build's core count)", () => {
  afterEach(() => {
    if (had) Object.defineProperty(globalThis, "navigator", had);
    else delete g.navigator;
  });

  it("reports the given cores while the module starts, the real count after", async () => {
    const nav = browserLikeNavigator(2);
    Object.defineProperty(globalThis, "navigator", { value: nav, configurable: true });
    const seen = await withLogicalCores(6, async () => nav.hardwareConcurrency);
    expect(seen).toBe(6);
    expect(nav.hardwareConcurrency).toBe(2);
    expect(Object.getOwnPropertyDescriptor(nav, "hardwareConcurrency")).toBeUndefined();
  });

  it("restores the real count when the start throws", async () => {
    const nav = browserLikeNavigator(3);
    Object.defineProperty(globalThis, "navigator", { value: nav, configurable: true });
    await expect(
      withLogicalCores(8, async () => {
        throw new Error(`failed at ${nav.hardwareConcurrency}`);
      }),
    ).rejects.toThrow("failed at 8");
    expect(nav.hardwareConcurrency).toBe(3);
  });

  it("runs the start unchanged where there is no navigator (Node 20)", async () => {
    Object.defineProperty(globalThis, "navigator", { value: undefined, configurable: true });
    await expect(withLogicalCores(4, async () => "started")).resolves.toBe("started");
  });
});
