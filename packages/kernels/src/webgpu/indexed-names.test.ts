import { describe, expect, it } from "vitest";
import { stackInputName } from "./block-stack";
import { blockInputName, indexedName } from "./indexed-names";

describe("indexed kernel input names", () => {
  it("spell the prefix and the index", () => {
    expect(indexedName("t", 0)).toBe("t0");
    expect(indexedName("g", 171)).toBe("g171");
    expect(indexedName("t", 3)).not.toBe(indexedName("s", 3));
    expect(blockInputName(11, "fc2B")).toBe("b11.fc2B");
    expect(stackInputName(4, "ws")).toBe("b4.ws");
    // Asked again (now from the cache), the same names.
    expect(indexedName("g", 171)).toBe("g171");
    expect(blockInputName(11, "fc2B")).toBe("b11.fc2B");
  });

  it("do not mix up names that share a prefix", () => {
    expect(indexedName("p", 1)).toBe("p1");
    expect(indexedName("p", 11)).toBe("p11");
    expect(blockInputName(1, "x")).toBe("b1.x");
    expect(blockInputName(1, "xx")).toBe("b1.xx");
  });
});
