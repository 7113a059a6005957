import { type TextOptions, svgText } from "@sit/core";
import sharp from "sharp";

type Rgb = readonly [number, number, number];

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

// The plot is SVG, rasterised by sharp (librsvg), so its text is set in a real font (DejaVu Sans
// on Debian) rather than hand-drawn glyphs.
const GREY = "rgb(110,110,110)";
const GRID = "rgb(225,225,225)";
const BLACK = "rgb(20,20,20)";

const css = (c: Rgb) => `rgb(${c[0]},${c[1]},${c[2]})`;

/** Text whose baseline is at y (plot defaults: dark text). */
function text(x: number, y: number, s: string, o: TextOptions = {}): string {
  return svgText(x, y, s, { fill: BLACK, ...o });
}

function line(x0: number, y0: number, x1: number, y1: number, stroke: string, width = 1, dash = 0) {
  const d = dash > 0 ? ` stroke-dasharray="${dash} ${dash}"` : "";
  return `<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y1}" stroke="${stroke}" stroke-width="${width}"${d}/>`;
}

/**
 * Accuracy-vs-x line plots side by side, with a shared y range (in %, rounded out to tens), grid
 * lines every 10 %, markers at the data points, axis titles and one legend for every series.
 * Resolves with PNG bytes.
 */
export async function renderPlot(spec: PlotSpec): Promise<Buffer> {
  const panelW = 420;
  const panelH = 300;
  const left = 80;
  const gap = 70;
  const top = 84;
  const width = left + spec.panels.length * panelW + (spec.panels.length - 1) * gap + 30;
  const legendRows = Math.ceil(spec.panels[0].series.length / 3);
  const height = top + panelH + 70 + legendRows * 26 + 10;
  const all = spec.panels.flatMap((p) => p.series.flatMap((s) => s.values)).filter(Number.isFinite);
  const lo = all.length ? Math.max(0, Math.floor(Math.min(...all) / 10) * 10) : 0;
  const hi = all.length ? Math.min(100, Math.ceil(Math.max(...all) / 10) * 10) : 100;
  const yMax = hi > lo ? hi : lo + 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    text(width / 2, 28, spec.title, { size: 17, bold: true }),
  ];

  spec.panels.forEach((panel, p) => {
    const x0 = left + p * (panelW + gap);
    const y0 = top;
    const px = (i: number) => x0 + 30 + (i * (panelW - 60)) / Math.max(1, spec.xLabels.length - 1);
    const py = (v: number) => y0 + panelH - ((v - lo) / (yMax - lo)) * panelH;
    for (let v = lo; v <= yMax; v += 10) {
      out.push(line(x0, py(v), x0 + panelW, py(v), GRID));
      out.push(text(x0 - 8, py(v) + 5, `${v}`, { anchor: "end", fill: GREY }));
    }
    out.push(
      line(x0, y0, x0, y0 + panelH, BLACK),
      line(x0, y0 + panelH, x0 + panelW, y0 + panelH, BLACK),
    );
    spec.xLabels.forEach((l, i) => {
      out.push(line(px(i), y0 + panelH, px(i), y0 + panelH + 5, BLACK));
      out.push(text(px(i), y0 + panelH + 22, l, { fill: GREY }));
    });
    out.push(text(x0 + panelW / 2, y0 - 14, panel.title, { size: 15, bold: true }));
    out.push(text(x0 + panelW / 2, y0 + panelH + 46, spec.xTitle, { fill: GREY }));
    for (const s of panel.series) {
      for (let i = 1; i < s.values.length; i++)
        if (Number.isFinite(s.values[i - 1]) && Number.isFinite(s.values[i]))
          out.push(
            line(
              px(i - 1),
              py(s.values[i - 1]),
              px(i),
              py(s.values[i]),
              css(s.color),
              3,
              s.dashed ? 6 : 0,
            ),
          );
      s.values.forEach((v, i) => {
        if (Number.isFinite(v))
          out.push(`<circle cx="${px(i)}" cy="${py(v)}" r="5" fill="${css(s.color)}"/>`);
      });
    }
  });
  out.push(text(10, top - 36, spec.yTitle, { anchor: "start", fill: GREY }));

  const legendTop = top + panelH + 62;
  spec.panels[0].series.forEach((s, i) => {
    const x = left + (i % 3) * 260;
    const y = legendTop + Math.floor(i / 3) * 26;
    out.push(line(x, y + 7, x + 30, y + 7, css(s.color), 3, s.dashed ? 6 : 0));
    out.push(`<circle cx="${x + 15}" cy="${y + 7}" r="5" fill="${css(s.color)}"/>`);
    out.push(text(x + 40, y + 12, s.label, { anchor: "start" }));
  });
  out.push("</svg>");
  return sharp(Buffer.from(out.join("\n")), { density: 72 })
    .flatten({ background: "#ffffff" })
    .png()
    .toBuffer();
}
