import { PNG } from "pngjs";
import { GLYPH_HEIGHT, GLYPH_WIDTH, glyphPixel, textWidth } from "./font";

type Rgb = readonly [number, number, number];

/** A white RGB canvas with the few drawing operations the plot needs. */
class Canvas {
  readonly png: PNG;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.png = new PNG({ width, height });
    this.png.data.fill(255);
  }

  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 4;
    this.png.data[o] = c[0];
    this.png.data[o + 1] = c[1];
    this.png.data[o + 2] = c[2];
    this.png.data[o + 3] = 255;
  }

  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }

  /** A line `thick` pixels wide (square pen), optionally dashed (`dash` pixels on, `dash` off). */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1, dash = 0): void {
    const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
    const r = Math.floor(thick / 2);
    for (let k = 0; k <= n; k++) {
      if (dash > 0 && Math.floor(k / dash) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * k) / n;
      const y = y0 + ((y1 - y0) * k) / n;
      this.rect(Math.round(x) - r, Math.round(y) - r, thick, thick, c);
    }
  }

  disc(cx: number, cy: number, radius: number, c: Rgb): void {
    for (let j = -radius; j <= radius; j++)
      for (let i = -radius; i <= radius; i++)
        if (i * i + j * j <= radius * radius + radius) this.set(cx + i, cy + j, c);
  }

  /** Text with its top-left corner at (x, y); `align` places x at the left, centre or right. */
  text(
    s: string,
    x: number,
    y: number,
    c: Rgb,
    scale = 2,
    align: "left" | "center" | "right" = "left",
  ): void {
    const w = textWidth(s, scale);
    let left = align === "left" ? x : align === "center" ? x - w / 2 : x - w;
    left = Math.round(left);
    for (const ch of s) {
      for (let gy = 0; gy < GLYPH_HEIGHT; gy++)
        for (let gx = 0; gx < GLYPH_WIDTH; gx++)
          if (glyphPixel(ch, gx, gy)) this.rect(left + gx * scale, y + gy * scale, scale, scale, c);
      left += (GLYPH_WIDTH + 1) * scale;
    }
  }
}

/** One line of a panel: a name, a colour and y values at the panel's x positions (NaN: missing). */
export interface Series {
  label: string;
  color: Rgb;
  values: number[];
  dashed?: boolean;
}

/** Options of {@link renderPlot}. */
export interface PlotSpec {
  title: string;
  /** Tick labels of the x positions (equally spaced, e.g. label fractions on a log scale). */
  xLabels: string[];
  xTitle: string;
  yTitle: string;
  panels: { title: string; series: Series[] }[];
}

const GREY: Rgb = [110, 110, 110];
const GRID: Rgb = [225, 225, 225];
const BLACK: Rgb = [20, 20, 20];

/**
 * Accuracy-vs-x line plots side by side, with a shared y range (in %, rounded out to tens), grid
 * lines every 10 %, markers at the data points and one legend for every series. Returns PNG bytes.
 */
export function renderPlot(spec: PlotSpec): Buffer {
  const panelW = 420;
  const panelH = 300;
  const left = 80;
  const gap = 70;
  const top = 84;
  const width = left + spec.panels.length * panelW + (spec.panels.length - 1) * gap + 30;
  const legendRows = Math.ceil(spec.panels[0].series.length / 3);
  const height = top + panelH + 70 + legendRows * 26 + 10;
  const cv = new Canvas(width, height);
  const all = spec.panels.flatMap((p) => p.series.flatMap((s) => s.values)).filter(Number.isFinite);
  const lo = all.length ? Math.max(0, Math.floor(Math.min(...all) / 10) * 10) : 0;
  const hi = all.length ? Math.min(100, Math.ceil(Math.max(...all) / 10) * 10) : 100;
  const yMax = hi > lo ? hi : lo + 10;
  cv.text(spec.title, width / 2, 10, BLACK, 2, "center");

  spec.panels.forEach((panel, p) => {
    const x0 = left + p * (panelW + gap);
    const y0 = top;
    const px = (i: number) => x0 + 30 + (i * (panelW - 60)) / Math.max(1, spec.xLabels.length - 1);
    const py = (v: number) => y0 + panelH - ((v - lo) / (yMax - lo)) * panelH;
    for (let v = lo; v <= yMax; v += 10) {
      cv.line(x0, py(v), x0 + panelW, py(v), GRID);
      cv.text(`${v}`, x0 - 8, py(v) - 7, GREY, 2, "right");
    }
    cv.line(x0, y0, x0, y0 + panelH, BLACK);
    cv.line(x0, y0 + panelH, x0 + panelW, y0 + panelH, BLACK);
    spec.xLabels.forEach((l, i) => {
      cv.line(px(i), y0 + panelH, px(i), y0 + panelH + 5, BLACK);
      cv.text(l, px(i), y0 + panelH + 10, GREY, 2, "center");
    });
    cv.text(panel.title, x0 + panelW / 2, y0 - 24, BLACK, 2, "center");
    cv.text(spec.xTitle, x0 + panelW / 2, y0 + panelH + 32, GREY, 2, "center");
    for (const s of panel.series) {
      for (let i = 1; i < s.values.length; i++)
        if (Number.isFinite(s.values[i - 1]) && Number.isFinite(s.values[i]))
          cv.line(
            px(i - 1),
            py(s.values[i - 1]),
            px(i),
            py(s.values[i]),
            s.color,
            3,
            s.dashed ? 6 : 0,
          );
      s.values.forEach((v, i) => {
        if (Number.isFinite(v)) cv.disc(px(i), py(v), 5, s.color);
      });
    }
  });
  cv.text(spec.yTitle, 10, top - 46, GREY, 2, "left");

  const legendTop = top + panelH + 62;
  spec.panels[0].series.forEach((s, i) => {
    const col = i % 3;
    const row = Math.floor(i / 3);
    const x = left + col * 260;
    const y = legendTop + row * 26;
    cv.line(x, y + 7, x + 30, y + 7, s.color, 3, s.dashed ? 6 : 0);
    cv.disc(x + 15, y + 7, 5, s.color);
    cv.text(s.label, x + 40, y, BLACK, 2);
  });
  return PNG.sync.write(cv.png);
}
