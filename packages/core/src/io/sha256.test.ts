import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Sha256, sha256 } from "./sha256";

const node = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

describe("sha256", () => {
  it("the portable hash agrees with node:crypto across block boundaries and split updates", () => {
    // FIPS 180-4's "abc" example, then lengths around the 55/56/64-byte padding edges.
    expect(new Sha256().update("abc").digest()).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    for (const n of [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255);
      const cut = Math.floor(n / 3);
      const split = new Sha256().update(bytes.subarray(0, cut)).update(bytes.subarray(cut));
      expect(split.digest(), `${n} bytes`).toBe(node(bytes));
    }
    expect(new Sha256().update("é ü 😀").digest()).toBe(node("é ü 😀"));
  });

  it("sha256() gives the same digests as the portable one, and refuses reuse after digest", () => {
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => i & 255);
    expect(sha256().update(bytes).update("meta").digest()).toBe(
      new Sha256().update(bytes).update("meta").digest(),
    );
    const h = new Sha256();
    h.digest();
    expect(() => h.update("x")).toThrow(/after digest/);
  });
});
