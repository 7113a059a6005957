import { Rng } from "@sit/core";
import { GMML_FILLS, GmmlMasker } from "@sit/gmml";
import { gmmlSchema } from "@sit/recipes";
import { type Stats, batchRgba, imageCanvas, maskToRgba, pictureGrid } from "./pictures";
import type { ImageSet, PictureBatch } from "./protocol";
import type { GmmlSettings } from "./run-config";

/** SiT's GMML settings as the recipe fills them in (its config schema's defaults). */
export function recipeGmmlDefaults(): GmmlSettings {
  const d = gmmlSchema.parse({});
  return {
    ratio: d.ratio,
    align: d.align,
    fill: d.fill,
    replaceProb: d.replaceProb,
    replaceRatio: d.replaceRatio,
  };
}

/** The first `n` images of a set as a normalised NHWC float batch (what the masker corrupts in training). */
export function normalisedBatch(set: ImageSet, n: number, stats: Stats): PictureBatch {
  const count = Math.min(n, set.count);
  const { height: H, width: W, channels: C } = set;
  const data = new Float32Array(count * H * W * C);
  for (let i = 0; i < data.length; i++) {
    const c = i % C;
    const v = set.images[i] / 255;
    data[i] = stats ? (v - stats.mean[c % stats.mean.length]) / stats.std[c % stats.std.length] : v;
  }
  return { data, shape: [count, H, W, C] };
}

interface Control {
  key: keyof GmmlSettings;
  label: string;
  help: string;
  input: HTMLInputElement | HTMLSelectElement;
  read(): number | string;
}

/**
 * The "GMML, live" panel: controls for the masker's settings and one batch drawn as
 * original | corrupted | mask, redrawn on every change with @sit/gmml's GmmlMasker (the class the
 * recipe trains with). `onChange` hands the settings to the training panel.
 */
export class GmmlPanel {
  readonly element: HTMLElement;
  private readonly controls: Control[];
  private readonly pictures: HTMLElement;
  private readonly message: HTMLElement;
  private batch: PictureBatch | null = null;
  private stats: Stats = null;
  private seed = 0;

  constructor(
    patchSize: number,
    private readonly onChange: (settings: GmmlSettings) => void,
  ) {
    const d = recipeGmmlDefaults();
    const range = (
      key: keyof GmmlSettings,
      label: string,
      help: string,
      [min, max, step]: [number, number, number],
    ): Control => {
      const input = document.createElement("input");
      Object.assign(input, { type: "range", min, max, step, value: String(d[key]) });
      return { key, label, help, input, read: () => Number(input.value) };
    };
    const select = (
      key: keyof GmmlSettings,
      label: string,
      help: string,
      options: (string | number)[],
    ): Control => {
      const input = document.createElement("select");
      for (const o of options) input.add(new Option(String(o), String(o)));
      input.value = String(d[key]);
      const read = () => (key === "align" ? Number(input.value) : input.value);
      return { key, label, help, input, read };
    };
    this.controls = [
      range(
        "ratio",
        "corruption ratio",
        "largest fraction of an image covered by blocks",
        [0.1, 1, 0.05],
      ),
      select(
        "align",
        "alignment (px)",
        "block corners on a grid of this many pixels: 1 = pixel groups, the patch size = whole tokens",
        [1, patchSize],
      ),
      select(
        "fill",
        "fill",
        "what corrupted blocks hold: zeros, Gaussian noise, or pixels shuffled within the image",
        [...GMML_FILLS],
      ),
      range(
        "replaceProb",
        "replacement probability",
        "chance that an image instead gets blocks pasted from another image of the batch",
        [0, 1, 0.05],
      ),
      range(
        "replaceRatio",
        "replacement ratio",
        "fraction of the image a replacement covers",
        [0.1, 1, 0.05],
      ),
    ];
    this.element = document.createElement("div");
    const form = document.createElement("div");
    form.className = "controls";
    for (const c of this.controls) {
      const label = document.createElement("label");
      label.title = c.help;
      const value = document.createElement("output");
      const show = () => {
        value.textContent = String(c.read());
      };
      show();
      c.input.id = `gmml-${c.key}`;
      c.input.addEventListener("input", () => {
        show();
        this.redraw();
      });
      label.append(`${c.label} `, c.input, value);
      form.append(label);
    }
    const again = document.createElement("button");
    again.textContent = "new draw";
    again.title = "draw the corruption again with the next seed";
    again.addEventListener("click", () => {
      this.seed++;
      this.redraw();
    });
    form.append(again);
    this.message = document.createElement("p");
    this.message.className = "message";
    this.pictures = document.createElement("div");
    this.element.append(form, this.message, this.pictures);
  }

  settings(): GmmlSettings {
    const s: Record<string, number | string> = {};
    for (const c of this.controls) s[c.key] = c.read();
    return s as unknown as GmmlSettings;
  }

  /** Show `n` images of `set` (normalised with `stats`, as training does). */
  setImages(set: ImageSet, stats: Stats, n = 8): void {
    this.stats = stats;
    this.batch = normalisedBatch(set, n, stats);
    this.redraw();
  }

  private redraw(): void {
    const settings = this.settings();
    this.onChange(settings);
    const batch = this.batch;
    if (!batch) return;
    let result: ReturnType<GmmlMasker["apply"]>;
    try {
      // No patchSize: the panel draws pixel masks only (a token mask needs a side that is a
      // multiple of the patch, which the visitor's 64 px images are not).
      const masker = new GmmlMasker(settings);
      result = masker.apply(batch, Rng.seed(this.seed));
    } catch (err) {
      // An impossible combination (e.g. a ratio that blocks of this alignment cannot reach) is
      // the masker's own error, shown as it is.
      this.message.textContent = (err as Error).message;
      this.pictures.replaceChildren();
      return;
    }
    this.message.textContent = "";
    const [B, H, W] = batch.shape;
    const scale = Math.max(2, Math.floor(84 / H));
    const corrupted: PictureBatch = { data: result.corrupted.data, shape: batch.shape };
    const describe = (i: number) => {
      const how = result.images[i];
      const kind =
        how.kind === "replacement"
          ? `replaced from image ${how.partner! + 1}`
          : `${how.fill} blocks`;
      return `${kind}, ${Math.round((100 * how.covered) / (H * W))} % of pixels`;
    };
    const each = (title: string, make: (i: number) => [Uint8ClampedArray, string]) => ({
      title,
      canvases: Array.from({ length: B }, (_, i) => {
        const [rgba, label] = make(i);
        return imageCanvas(rgba, H, W, scale, `image ${i + 1}: ${label}`);
      }),
    });
    const originals = batchRgba(batch, this.stats);
    const corruptedRgba = batchRgba(corrupted, this.stats);
    this.pictures.replaceChildren(
      pictureGrid(
        [
          each("original", (i) => [originals[i], "original"]),
          each("corrupted", (i) => [corruptedRgba[i], `corrupted (${describe(i)})`]),
          each("mask (white = corrupted)", (i) => [
            maskToRgba(result.pixelMask.data, i * H * W, H, W),
            `mask (${describe(i)})`,
          ]),
        ],
        `GMML corruption of ${B} training images, seed ${this.seed} (hover a picture for how it was corrupted). ` +
          "A new run trains with these settings.",
      ),
    );
  }
}
