import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { encodePng } from "./png";

describe("encodePng", () => {
  it("writes PNGs that a decoder reads back pixel for pixel (RGBA and RGB)", () => {
    const [w, h] = [5, 3];
    const rgba = Uint8Array.from({ length: w * h * 4 }, (_, i) => (i * 37) % 256);
    const a = PNG.sync.read(Buffer.from(encodePng(rgba, w, h)));
    expect([a.width, a.height]).toEqual([w, h]);
    expect(Uint8Array.from(a.data)).toEqual(rgba);
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 11) % 256);
    const b = PNG.sync.read(Buffer.from(encodePng(rgb, w, h, 3)));
    const expected = new Uint8Array(w * h * 4);
    for (let p = 0; p < w * h; p++) {
      expected.set(rgb.subarray(p * 3, p * 3 + 3), p * 4);
      expected[p * 4 + 3] = 255;
    }
    expect(Uint8Array.from(b.data)).toEqual(expected);
  });

  it("checks its arguments", () => {
    expect(() => encodePng(new Uint8Array(4), 2, 1)).toThrow(/pixels/);
    expect(() => encodePng(new Uint8Array(0), 0, 1)).toThrow(/width/);
    expect(() => encodePng(new Uint8Array(3), 1, 1, 2 as 3)).toThrow(/channels/);
  });
});
