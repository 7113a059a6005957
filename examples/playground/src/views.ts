// The training panel's pictures and charts: how worker reports become figures on the page.
import { LineChart } from "./chart";
import { attentionScaleMax, heatColor, overlayAttention, toRgbImages } from "@sit/eval";
import { batchRgba, imageCanvas, pictureGrid, rgbaOf } from "./pictures";
import type { FromWorker } from "./protocol";

type Msg<T extends FromWorker["type"]> = Extract<FromWorker, { type: T }>;

/** Pixels per image pixel, so that 28 px images show at ≈ 70 px. */
const scaleFor = (side: number) => Math.max(2, Math.floor(72 / side));

/** The live charts: losses, learning rate, throughput, k-NN accuracy. */
export class Charts {
  readonly loss = new LineChart({
    title: "Loss L = Lc + λ·Lr",
    xLabel: "step",
    yLabel: "loss",
    series: ["total"],
  });
  readonly terms = new LineChart({
    title: "Loss terms",
    xLabel: "step",
    yLabel: "loss",
    series: ["contrastive Lc", "reconstruction Lr (masked L1)"],
    logY: true,
  });
  readonly lr = new LineChart({
    title: "Learning rate (warm-up, then cosine)",
    xLabel: "step",
    yLabel: "learning rate",
    series: ["lr"],
  });
  readonly speed = new LineChart({
    title: "Throughput",
    xLabel: "step",
    yLabel: "images / s",
    series: ["images/s"],
  });
  readonly knn = new LineChart({
    title: "k-NN top-1 on held-out images",
    xLabel: "step",
    yLabel: "accuracy (%)",
    series: ["student", "random init"],
  });
  private randomInit: number | undefined;

  get elements(): SVGSVGElement[] {
    return [this.loss, this.terms, this.lr, this.speed, this.knn].map((c) => c.element);
  }

  step(m: Msg<"step">): void {
    this.loss.add("total", m.step, m.loss);
    if (m.terms.contrastive !== undefined)
      this.terms.add("contrastive Lc", m.step, m.terms.contrastive);
    if (m.terms.reconstruction !== undefined)
      this.terms.add("reconstruction Lr (masked L1)", m.step, m.terms.reconstruction);
    this.lr.add("lr", m.step, m.lr);
    this.speed.add("images/s", m.step, m.imagesPerSec);
  }

  /** A k-NN value; the first one of a run is the random initialisation's, drawn as a flat reference. */
  knnValue(m: Msg<"knn">, first: boolean): void {
    if (first) this.randomInit = 100 * m.top1;
    this.knn.add("student", m.step, 100 * m.top1);
    if (this.randomInit !== undefined) {
      this.knn.add("random init", 0, this.randomInit);
      this.knn.add("random init", m.step, this.randomInit);
    }
  }

  clear(): void {
    for (const c of [this.loss, this.terms, this.lr, this.speed, this.knn]) c.clear();
    this.randomInit = undefined;
  }
}

/** original | corrupted | reconstruction: one row per kind, one column per held-out image. */
export function reconstructionFigure(m: Msg<"reconstruction">): HTMLElement {
  const [, H, W] = m.original.shape;
  const s = scaleFor(H);
  const row = (title: string, batch: typeof m.original, what: string) => ({
    title,
    canvases: batchRgba(batch, m.stats).map((rgba, i) =>
      imageCanvas(rgba, H, W, s, `held-out image ${i + 1}${what}`),
    ),
  });
  return pictureGrid(
    [
      row("original", m.original, ""),
      row("corrupted (GMML)", m.corrupted, ", GMML-corrupted"),
      row("reconstruction", m.reconstruction, ", reconstructed by the student"),
    ],
    `Step ${m.step}: the student reconstructs held-out images from their GMML-corrupted versions (the same corruption at every report).`,
  );
}

/** Each held-out image with the CLS token's attention (mean of heads, last block) laid over it. */
export function attentionFigure(m: Msg<"attention">): HTMLElement {
  const [, H, W] = m.images.shape;
  const s = scaleFor(H);
  const scaleMax = attentionScaleMax(Float32Array.from(m.maps.flatMap((map) => [...map])));
  const images = toRgbImages(m.images.data, m.images.shape, m.stats);
  const [gh, gw] = m.grid;
  const figure = pictureGrid(
    [
      {
        title: "image",
        canvases: images.map((img, i) =>
          imageCanvas(rgbaOf(img), H, W, s, `held-out image ${i + 1}`),
        ),
      },
      {
        title: "CLS attention (mean of heads)",
        canvases: images.map((img, i) =>
          imageCanvas(
            rgbaOf(overlayAttention(img, m.maps[i], gh, gw, scaleMax)),
            H,
            W,
            s,
            `held-out image ${i + 1}: CLS attention, peak ${Math.max(...m.maps[i]).toFixed(1)}× uniform`,
          ),
        ),
      },
    ],
    `Step ${m.step}: attention of the CLS token to the ${m.grid[0]}×${m.grid[1]} patches in block ${m.block + 1} ` +
      `(mean of ${m.heads} heads), as multiples of uniform attention; one colour scale for every map, 0× to ${scaleMax.toFixed(1)}×.`,
  );
  figure.prepend(colourBar(scaleMax));
  return figure;
}

function colourBar(max: number): HTMLElement {
  const bar = document.createElement("div");
  bar.className = "colour-bar";
  const canvas = document.createElement("canvas");
  canvas.width = 160;
  canvas.height = 10;
  const ctx = canvas.getContext("2d")!;
  for (let x = 0; x < canvas.width; x++) {
    const [r, g, b] = heatColor(x / (canvas.width - 1));
    ctx.fillStyle = `rgb(${255 * r},${255 * g},${255 * b})`;
    ctx.fillRect(x, 0, 1, canvas.height);
  }
  bar.append("attention ÷ uniform: 0× ", canvas, ` ${max.toFixed(1)}×`);
  return bar;
}
