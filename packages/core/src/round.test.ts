import { describe, expect, it } from "vitest";
import { roundHalfEven } from "./round";

describe("roundHalfEven", () => {
  it("is Python's round", () => {
    expect([0.5, 1.5, 2.5, 3.5, 2.4, 2.6, 4].map(roundHalfEven)).toEqual([0, 2, 2, 4, 2, 3, 4]);
    expect([-0.5, -1.5, -2.5, -2.6].map((x) => roundHalfEven(x) + 0)).toEqual([0, -2, -2, -3]);
  });
});
