import { METHOD_LABELS, type Method } from "./methods";
import { type PlotSpec, renderPlot } from "./plot";
import type { MethodResults, StudyBudget } from "./study";

/** Line colour of each method in the study's plots. */
export const METHOD_COLORS: Record<Method, readonly [number, number, number]> = {
  random: [120, 120, 120],
  sit: [214, 39, 40],
  gmml: [255, 127, 14],
  mocov3: [31, 119, 180],
  mae: [44, 160, 44],
  dino: [148, 103, 189],
  "sit-attn": [140, 86, 75],
};

const pct = (x: number | undefined) => (x === undefined ? "–" : (100 * x).toFixed(1));
const fractionLabel = (f: number) => `${+(100 * f).toPrecision(3)} %`;

/** The study's plot: accuracy vs label fraction, linear probe and fine-tuning, one line per method. */
export function renderStudyPlot(
  results: Record<string, MethodResults>,
  budget: StudyBudget,
): Promise<Buffer> {
  const fractions = [...budget.fractions].sort((a, b) => a - b);
  const series = (kind: "linear" | "finetune") =>
    budget.methods.map((m) => ({
      label: METHOD_LABELS[m],
      color: METHOD_COLORS[m],
      dashed: m === "random",
      values: fractions.map((f) => 100 * (results[m]?.[kind][f] ?? Number.NaN)),
    }));
  const spec: PlotSpec = {
    title: `Fashion-MNIST: ViT ${budget.embedDim}-d, depth ${budget.depth}, patch ${budget.patchSize}; ${budget.steps} pretraining steps`,
    xLabels: fractions.map(fractionLabel),
    xTitle: "labelled training images",
    yTitle: "test top-1 (%)",
    panels: [
      { title: "Linear probe (frozen)", series: series("linear") },
      { title: "Fine-tuning", series: series("finetune") },
    ],
  };
  return renderPlot(spec);
}

/** Everything the report states besides the numbers. */
export interface ReportContext {
  budget: StudyBudget;
  results: Record<string, MethodResults>;
  /** Train/test images actually used. */
  data: { train: number; test: number };
  machine: string;
  /** Command that produced it, and the full-budget command. */
  command: string;
  fullCommand: string;
  plotFile: string;
  complete: boolean;
  /** Wall time of the run that finished the study (seconds), when recorded. */
  wallSec?: number;
}

/** The markdown results page (`docs/results/fashion-mnist.md`). */
export function renderStudyMarkdown(c: ReportContext): string {
  const b = c.budget;
  const fractions = [...b.fractions].sort((x, y) => x - y);
  const head = [
    "method",
    `k-NN (k = ${b.knnK})`,
    ...fractions.map((f) => `linear ${fractionLabel(f)}`),
    ...fractions.map((f) => `fine-tune ${fractionLabel(f)}`),
    "pretraining",
  ];
  const rows = b.methods.map((m) => {
    const r = c.results[m];
    const pre = r?.pretrain;
    const preCell =
      m === "random"
        ? "none"
        : pre
          ? `${pre.steps} steps, ${(pre.elapsedSec / 60).toFixed(1)} min`
          : "–";
    return [
      METHOD_LABELS[m],
      pct(r?.knn),
      ...fractions.map((f) => pct(r?.linear[f])),
      ...fractions.map((f) => pct(r?.finetune[f])),
      preCell,
    ];
  });
  const table = [head, head.map(() => "---"), ...rows]
    .map((r) => `| ${r.join(" | ")} |`)
    .join("\n");
  // Every method against random init, column by column (points of top-1), and the best per column.
  const columns: (readonly [string, (r: MethodResults | undefined) => number | undefined])[] = [
    ["k-NN", (r) => r?.knn],
    ...fractions.map(
      (f) =>
        [`linear ${fractionLabel(f)}`, (r: MethodResults | undefined) => r?.linear[f]] as const,
    ),
    ...fractions.map(
      (f) =>
        [
          `fine-tune ${fractionLabel(f)}`,
          (r: MethodResults | undefined) => r?.finetune[f],
        ] as const,
    ),
  ];
  const base = c.results.random;
  const delta = (m: Method, get: (r: MethodResults | undefined) => number | undefined) => {
    const a = get(c.results[m]);
    const z = get(base);
    if (a === undefined || z === undefined) return "–";
    const d = 100 * (a - z);
    return `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(1)}`;
  };
  const best = columns.map(([, get]) => {
    let top: Method | undefined;
    for (const m of b.methods) {
      const v = get(c.results[m]);
      if (v !== undefined && (top === undefined || v > (get(c.results[top]) as number))) top = m;
    }
    return top === undefined ? "–" : METHOD_LABELS[top];
  });
  const others = b.methods.filter((m) => m !== "random");
  const deltaTable = base
    ? [
        ["method", ...columns.map(([n]) => n)],
        ["method", ...columns].map(() => "---"),
        ...others.map((m) => [METHOD_LABELS[m], ...columns.map(([, get]) => delta(m, get))]),
        ["best", ...best],
      ]
        .map((r) => `| ${r.join(" | ")} |`)
        .join("\n")
    : "(random init. not run)";
  const perClass = fractions
    .map((f) => `${fractionLabel(f)} = ${Math.max(1, Math.round((f * c.data.train) / 10))}`)
    .join(", ");
  return `# Fashion-MNIST reproduction study

${c.complete ? "" : "**Incomplete run** — the table shows the stages finished so far.\n\n"}Does SiT pretraining on a small dataset alone beat training from scratch and the other
self-supervised methods, as the paper claims? The same ViT, pretrained for the same number of
steps on the Fashion-MNIST training images only (labels unused) by each method, then evaluated
with the labels. Test top-1 accuracy (%) on ${c.data.test.toLocaleString("en")} test images.

${table}

![accuracy vs label fraction](${c.plotFile})

Difference from random initialisation (points of top-1; one run, one seed, ${c.data.test.toLocaleString("en")} test images, so
differences of a point or two are within noise):

${deltaTable}

What these numbers do and do not show, against the paper's claim: [../results.md](../results.md).

## Protocol

- Data: ${c.data.train.toLocaleString("en")} training images (pretraining and labelled subsets), ${c.data.test.toLocaleString("en")} test images, 28 × 28 grayscale, normalised with Fashion-MNIST's mean/std.
- Backbone: ViT, patch ${b.patchSize}, width ${b.embedDim}, depth ${b.depth}, ${b.numHeads} heads, 1 input channel, drop path 0.1 while training.
- Pretraining: ${b.steps} steps at batch ${b.batchSize} for every method; SiT's two-view augmentation at 28 px (crop 0.2–1, flip, brightness/contrast jitter, blur σ 0.1–1, solarize); AdamW with SiT's schedules (lr ${b.pretrainLr ?? 5e-4}·B/256 = ${+(((b.pretrainLr ?? 5e-4) * b.batchSize) / 256).toPrecision(3)}, warm-up over the first tenth of the steps, cosine), per-tensor clipping 3.
  SiT: GMML (zeros, ratio 0.5, 50 % other-image paste) + contrastive vs. EMA teacher, λ = ${b.lambda}, projection ${b.projHidden}/256. GMML only: the same corruption and reconstruction head, no teacher. MoCo v3: clean views, projector + predictor (hidden ${b.projHidden}), τ 0.2, momentum 0.99 → 1. MAE: 75 % random tokens, transformer decoder (width ${b.decoderDim}, depth ${b.decoderDepth}), normalised-pixel MSE. Evaluated backbone: the ${b.from}.
- k-NN: DINO's weighted vote (cosine, T = 0.07) on CLS features of the ${c.data.train.toLocaleString("en")} training images.
- Linear probe: BatchNorm (no affine) + linear layer on frozen CLS features, SGD-momentum, ${b.probeEpochs} epochs; test accuracy of the last epoch.
- Fine-tuning: the whole ViT + linear head, AdamW (peak lr ${b.finetuneLr ?? `5e-4·B/512 = ${+((5e-4 * b.finetuneBatch) / 512).toPrecision(3)}`}, wd 0.05, ${b.finetuneWarmup ?? 5} warm-up epoch(s) (at most epochs − 1), cosine), label smoothing 0.1, random resized crop (${b.finetuneCropScale ?? 0.8}–1) + flip, batch ${b.finetuneBatch}; ${b.finetuneEpochs} epochs with all labels, ${b.fewshotEpochs} epochs with fewer; final-epoch test accuracy.
- Label fractions (few-shot in the paper's sense): the first k images of each class (k: ${perClass}), as the SiT code's \`num_imgs_per_cat\`.
- Machine: ${c.machine}.${c.wallSec !== undefined ? `\n- Wall time of the run: ${(c.wallSec / 60).toFixed(1)} min (all stages, one process).` : ""}

## Reproduce

\`\`\`sh
${c.command}
\`\`\`

Full budget (a GPU backend; see docs/backends.md):

\`\`\`sh
${c.fullCommand}
\`\`\`

Each stage's result is cached in \`<out>/results.json\`; re-running the command skips finished
stages and resumes pretraining from its last checkpoint.
`;
}
