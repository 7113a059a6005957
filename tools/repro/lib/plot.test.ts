import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { type PlotSpec, renderPlot } from "./plot";

const spec: PlotSpec = {
  title: "Fashion-MNIST: a plot",
  xLabels: ["1 %", "10 %", "100 %"],
  xTitle: "labelled training images",
  yTitle: "test top-1 (%)",
  panels: [
    {
      title: "Linear probe (frozen)",
      series: [
        { label: "SiT", color: [214, 39, 40], values: [50, 70, 80] },
        {
          label: "Random init.",
          color: [120, 120, 120],
          values: [40, Number.NaN, 60],
          dashed: true,
        },
      ],
    },
    {
      title: "Fine-tuning",
      series: [
        { label: "SiT", color: [214, 39, 40], values: [55, 75, 85] },
        { label: "Random init.", color: [120, 120, 120], values: [45, 65, 75], dashed: true },
      ],
    },
  ],
};

/** Dark or grey pixels (text, axes) in a rectangle. */
function ink(png: PNG, x0: number, y0: number, w: number, h: number): number {
  let n = 0;
  for (let y = y0; y < y0 + h; y++)
    for (let x = x0; x < x0 + w; x++) if (png.data[(y * png.width + x) * 4] < 160) n++;
  return n;
}

describe("renderPlot", () => {
  it("draws the series in their colours and its titles and labels as text in a real font", async () => {
    const png = PNG.sync.read(await renderPlot(spec));
    expect([png.width, png.height]).toEqual([80 + 2 * 420 + 70 + 30, 84 + 300 + 70 + 26 + 10]);
    const has = (r: number, g: number, b: number) => {
      for (let i = 0; i < png.data.length; i += 4)
        if (png.data[i] === r && png.data[i + 1] === g && png.data[i + 2] === b) return true;
      return false;
    };
    expect(has(214, 39, 40)).toBe(true);
    expect(has(120, 120, 120)).toBe(true);
    // The title (centred, top 40 px), the y-axis title (top left) and the legend's labels carry glyphs.
    expect(ink(png, 0, 0, png.width, 40)).toBeGreaterThan(200);
    expect(ink(png, 0, 30, 200, 30)).toBeGreaterThan(0);
    expect(ink(png, 120, 84 + 300 + 62, 100, 20)).toBeGreaterThan(20);
    // Nothing is drawn where no text or line goes: the bottom-right corner stays white.
    expect(ink(png, png.width - 20, png.height - 10, 20, 10)).toBe(0);
  });
});
