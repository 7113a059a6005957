// A small SVG line chart with a title, labelled axes, ticks and a legend: what a TensorBoard
// scalar plot shows, without a charting library.

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/** Options of a {@link LineChart}. */
export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Series names, in legend order. */
  series: string[];
  /** Log-scale y axis (losses span decades early in training). Default false. */
  logY?: boolean;
  width?: number;
  height?: number;
}

/** "Nice" tick values covering [lo, hi]: steps of 1, 2 or 5 × a power of ten. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** A short label of a tick value. */
export function formatTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return Number(v.toPrecision(3)).toString();
}

function el<K extends keyof SVGElementTagNameMap>(
  name: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A line chart of one or more series against a shared x (the training step). */
export class LineChart {
  readonly element: SVGSVGElement;
  private readonly points: Map<string, Array<[number, number]>>;
  private scheduled = false;
  private readonly w: number;
  private readonly h: number;

  constructor(private readonly options: ChartOptions) {
    this.w = options.width ?? 420;
    this.h = options.height ?? 240;
    this.element = el("svg", {
      viewBox: `0 0 ${this.w} ${this.h}`,
      width: this.w,
      height: this.h,
      role: "img",
      "aria-label": options.title,
      class: "chart",
    });
    this.points = new Map(options.series.map((s) => [s, []]));
    this.render();
  }

  /** Add a point to a series (non-finite values are kept out of the plot). */
  add(series: string, x: number, y: number): void {
    const list = this.points.get(series);
    if (!list)
      throw new Error(`chart "${this.options.title}": no series ${JSON.stringify(series)}`);
    if (!Number.isFinite(y) || (this.options.logY && y <= 0)) return;
    list.push([x, y]);
    if (!this.scheduled) {
      this.scheduled = true;
      requestAnimationFrame(() => {
        this.scheduled = false;
        this.render();
      });
    }
  }

  clear(): void {
    for (const list of this.points.values()) list.length = 0;
    this.render();
  }

  /** The points of a series (for tests and exports). */
  values(series: string): ReadonlyArray<[number, number]> {
    return this.points.get(series) ?? [];
  }

  private render(): void {
    const { title, xLabel, yLabel, logY } = this.options;
    const m = { left: 58, right: 12, top: 28, bottom: 40 };
    const pw = this.w - m.left - m.right;
    const ph = this.h - m.top - m.bottom;
    const all = [...this.points.values()].flat();
    const xs = all.map((p) => p[0]);
    const ys = all.map((p) => (logY ? Math.log10(p[1]) : p[1]));
    let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
    let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
    if (x0 > 0 && x0 < (x1 - x0) * 0.2) x0 = 0;
    const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
    const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;

    const svg = this.element;
    svg.replaceChildren();
    svg.append(el("text", { x: this.w / 2, y: 16, class: "chart-title" }, title));
    svg.append(el("rect", { x: m.left, y: m.top, width: pw, height: ph, class: "chart-frame" }));
    for (const t of niceTicks(x0, x1)) {
      svg.append(
        el("line", { x1: sx(t), x2: sx(t), y1: m.top + ph, y2: m.top + ph + 4, class: "tick" }),
      );
      svg.append(el("text", { x: sx(t), y: m.top + ph + 15, class: "tick-x" }, formatTick(t)));
    }
    const yTicks = logY
      ? niceTicks(Math.floor(y0), Math.ceil(y1), 4).filter(
          (t) => Number.isInteger(t) && t >= y0 && t <= y1,
        )
      : niceTicks(y0, y1);
    for (const t of yTicks) {
      svg.append(
        el("line", { x1: m.left, x2: m.left + pw, y1: sy(t), y2: sy(t), class: "grid-line" }),
      );
      svg.append(
        el(
          "text",
          { x: m.left - 5, y: sy(t) + 4, class: "tick-y" },
          formatTick(logY ? 10 ** t : t),
        ),
      );
    }
    svg.append(el("text", { x: m.left + pw / 2, y: this.h - 6, class: "axis-label" }, xLabel));
    svg.append(
      el(
        "text",
        {
          x: 12,
          y: m.top + ph / 2,
          class: "axis-label",
          transform: `rotate(-90 12 ${m.top + ph / 2})`,
        },
        logY ? `${yLabel} (log scale)` : yLabel,
      ),
    );
    let legendX = m.left + 6;
    this.options.series.forEach((name, i) => {
      const color = PALETTE[i % PALETTE.length];
      const pts = this.points.get(name) ?? [];
      if (pts.length > 0) {
        const d = pts
          .map(
            ([x, y], j) =>
              `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(logY ? Math.log10(y) : y).toFixed(1)}`,
          )
          .join("");
        svg.append(el("path", { d, stroke: color, class: "series" }));
      }
      if (this.options.series.length > 1) {
        svg.append(el("rect", { x: legendX, y: m.top + 6, width: 10, height: 3, fill: color }));
        const label = el("text", { x: legendX + 13, y: m.top + 11, class: "legend" }, name);
        svg.append(label);
        legendX += 20 + name.length * 6.2;
      }
    });
  }
}
