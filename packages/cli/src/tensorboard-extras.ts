import { Rng } from "@sit/core";
import type { Dataset, Sample } from "@sit/data";
import type { HparamValue } from "@sit/train";
import type { TensorBoardSink } from "@sit/train/node";
import type * as tf from "@tensorflow/tfjs";
import { attentionFigure } from "./commands/attention";
import { reconstructionFigure } from "./commands/reconstruct";
import { limitDataset } from "./datasets";
import type { DatasetKind } from "./datasets";
import { svgToPng } from "./figure";
import { type RunInfo, evaluationTransform, inputSize } from "./model";
import { type TrainedRecipe, networkOf, reconstructionParts } from "./recipes";

/**
 * What `sit pretrain` adds to its TensorBoard events beyond fit's scalars: the resolved config
 * as text, the hyper-parameters for the HParams tab, and pictures every N steps.
 */

/** The resolved config on the Text tab: JSON as a Markdown code block (indented 4 spaces). */
export function configMarkdown(resolved: object): string {
  return JSON.stringify(resolved, null, 2)
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

/**
 * The resolved config flattened to the HParams tab's scalars: dotted keys (`config.optim.baseLr`),
 * numbers, strings and booleans as they are, arrays as JSON; nulls, `out` and comments left out.
 */
export function flattenHparams(resolved: Record<string, unknown>): Record<string, HparamValue> {
  const out: Record<string, HparamValue> = {};
  const walk = (value: unknown, key: string) => {
    if (value === null || value === undefined) return;
    if (typeof value === "number") {
      if (Number.isFinite(value)) out[key] = value;
    } else if (typeof value === "string" || typeof value === "boolean") out[key] = value;
    else if (Array.isArray(value)) out[key] = JSON.stringify(value);
    else if (typeof value === "object")
      for (const [k, v] of Object.entries(value)) walk(v, key ? `${key}.${k}` : k);
  };
  const { out: _, $comment: __, ...rest } = resolved;
  walk(rest, "");
  return out;
}

/**
 * Pictures of the model being trained, written to TensorBoard: the GMML reconstruction (recipes
 * with a reconstruction head) and the last block's CLS attention, of the same few pretraining
 * images every time (evaluation transform, a fixed corruption seed), so that they can be compared
 * across steps. Their tensors are made once and disposed with {@link TrainingPictures.dispose};
 * each picture disposes what it makes, and no training generator is drawn from.
 */
export class TrainingPictures {
  private constructor(
    private readonly recipe: TrainedRecipe,
    private readonly run: RunInfo,
    private readonly images: tf.Tensor4D,
  ) {}

  /** Pick `count` pretraining images, evenly spaced, and prepare them. */
  static async create(
    recipe: TrainedRecipe,
    run: RunInfo,
    kind: DatasetKind,
    dataset: Dataset,
    count = 4,
  ): Promise<TrainingPictures> {
    const ds = limitDataset(dataset, count, true);
    const samples: Sample[] = await Promise.all(
      Array.from({ length: ds.length }, (_, i) => Promise.resolve(ds.get(i))),
    );
    const size = inputSize(networkOf(recipe).backbone);
    const [images] = evaluationTransform(run, kind, size).apply(samples, Rng.seed(0));
    return new TrainingPictures(recipe, run, images as tf.Tensor4D);
  }

  /** Render the pictures with the current student and write them to `sink` at `step`. */
  async write(sink: TensorBoardSink, step: number): Promise<void> {
    const title = `after ${step} training steps (student)`;
    const figures = [];
    let parts: ReturnType<typeof reconstructionParts> | undefined;
    try {
      parts = reconstructionParts(this.recipe);
    } catch {
      parts = undefined; // a recipe without a reconstruction head (MoCo v3, MAE)
    }
    if (parts)
      figures.push({
        tag: "pictures/reconstruction",
        figure: reconstructionFigure(parts.network, parts.masker, this.images, this.run.stats, {
          seed: 0,
          title: `GMML reconstruction ${title}`,
        }).figure,
      });
    const backbone = networkOf(this.recipe).backbone;
    figures.push({
      tag: "pictures/attention",
      figure: attentionFigure(backbone, this.images, this.run.stats, backbone.depth - 1, {
        title: `CLS-token attention, last block, ${title}`,
      }).figure,
    });
    for (const { tag, figure } of figures) {
      const png = await svgToPng(figure.svg);
      sink.image(tag, step, { png, width: figure.width, height: figure.height, channels: 3 });
    }
  }

  dispose(): void {
    this.images.dispose();
  }
}
