// The learning-curve report (issue 17): accuracy against pretraining steps, one line per method,
// and a table of each method's last evaluated point and its difference from random init.
import { METHOD_LABELS, type Method } from "./methods";
import { type PlotSpec, renderPlot } from "./plot";
import { METHOD_COLORS } from "./report";
import type { MethodResults, StudyBudget } from "./study";

const pct = (x: number | undefined) => (x === undefined ? "–" : (100 * x).toFixed(1));
const signed = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(100 * x).toFixed(1)}`;

/** The curve's accuracy of `m` at `step` (k-NN or the linear probe at `fraction`), if evaluated. */
function valueAt(
  r: MethodResults | undefined,
  step: number,
  kind: "knn" | "linear",
  fraction: number,
): number | undefined {
  const p = r?.curve?.find((q) => q.step === step);
  return kind === "knn" ? p?.knn : p?.linear[fraction];
}

/** Random init has no pretraining: its frozen-feature accuracy is the same at every step. */
function randomValue(r: MethodResults | undefined, kind: "knn" | "linear", fraction: number) {
  return kind === "knn" ? r?.knn : r?.linear[fraction];
}

/** The plot: k-NN and linear-probe accuracy against pretraining steps, one line per method. */
export function renderCurvePlot(
  results: Record<string, MethodResults>,
  budget: StudyBudget,
  partial: boolean,
): Promise<Buffer> {
  const curve = budget.curve ?? [budget.steps];
  const f = (budget.curveFractions ?? [0.1])[0];
  const series = (kind: "knn" | "linear") =>
    budget.methods.map((m) => ({
      label: METHOD_LABELS[m],
      color: METHOD_COLORS[m],
      dashed: m === "random",
      values: curve.map((s) => {
        const v =
          m === "random" ? randomValue(results[m], kind, f) : valueAt(results[m], s, kind, f);
        return v === undefined ? Number.NaN : 100 * v;
      }),
    }));
  const spec: PlotSpec = {
    title: `Fashion-MNIST learning curves: ViT ${budget.embedDim}-d, depth ${budget.depth}, batch ${budget.batchSize}, ${budget.pretrainImages ?? "all"} images${partial ? " (partial run)" : ""}`,
    xLabels: curve.map(String),
    xTitle: "pretraining steps",
    yTitle: "test top-1 (%)",
    panels: [
      { title: `k-NN (k = ${budget.knnK}), frozen features`, series: series("knn") },
      { title: `Linear probe, ${+(100 * f).toPrecision(3)} % labels`, series: series("linear") },
    ],
  };
  return renderPlot(spec);
}

/** The markdown table of the curves: every evaluated point, the last one, and its gap to random init. */
export function renderCurveTable(
  results: Record<string, MethodResults>,
  budget: StudyBudget,
): string {
  const curve = budget.curve ?? [budget.steps];
  const f = (budget.curveFractions ?? [0.1])[0];
  const random = results.random;
  const lines = [
    `| method | ${curve.map((s) => `k-NN / linear @ ${s}`).join(" | ")} | last point | k-NN Δ random | linear Δ random |`,
    `| --- | ${curve.map(() => "---:").join(" | ")} | ---: | ---: | ---: |`,
  ];
  const rk = randomValue(random, "knn", f);
  const rl = randomValue(random, "linear", f);
  for (const m of budget.methods) {
    if (m === "random") {
      lines.push(
        `| ${METHOD_LABELS[m]} | ${curve.map(() => `${pct(rk)} / ${pct(rl)}`).join(" | ")} | – | – | – |`,
      );
      continue;
    }
    const r = results[m];
    const cells = curve.map((s) => {
      const k = valueAt(r, s, "knn", f);
      const l = valueAt(r, s, "linear", f);
      return k === undefined && l === undefined ? "–" : `${pct(k)} / ${pct(l)}`;
    });
    const last = r?.curve?.filter((p) => p.knn !== undefined).at(-1);
    const lk = last?.knn;
    const ll = last?.linear[f];
    lines.push(
      `| ${METHOD_LABELS[m as Method]} | ${cells.join(" | ")} | ${last ? `step ${last.step}` : "–"} | ${lk !== undefined && rk !== undefined ? signed(lk - rk) : "–"} | ${ll !== undefined && rl !== undefined ? signed(ll - rl) : "–"} |`,
    );
  }
  return lines.join("\n");
}

/** SiT's gap to MoCo v3 (k-NN and linear, percentage points) at every step both reached. */
export function sitMocoGaps(
  results: Record<string, MethodResults>,
  budget: StudyBudget,
): { step: number; knn: number; linear: number }[] {
  const f = (budget.curveFractions ?? [0.1])[0];
  const out: { step: number; knn: number; linear: number }[] = [];
  for (const s of budget.curve ?? []) {
    const [sk, mk] = [valueAt(results.sit, s, "knn", f), valueAt(results.mocov3, s, "knn", f)];
    const [sl, ml] = [
      valueAt(results.sit, s, "linear", f),
      valueAt(results.mocov3, s, "linear", f),
    ];
    if (sk === undefined || mk === undefined || sl === undefined || ml === undefined) continue;
    out.push({ step: s, knn: 100 * (sk - mk), linear: 100 * (sl - ml) });
  }
  return out;
}

/** The curve report's markdown (`docs/results/fashion-mnist-curves.md`), generated from results.json. */
export function renderCurveMarkdown(c: {
  budget: StudyBudget;
  results: Record<string, MethodResults>;
  machine: string;
  command: string;
  plotFile: string;
  partial: boolean;
}): string {
  const b = c.budget;
  const gaps = sitMocoGaps(c.results, b);
  const reached = b.methods
    .filter((m) => m !== "random")
    .map((m) => `${METHOD_LABELS[m]} ${c.results[m]?.curve?.at(-1)?.step ?? 0}`)
    .join(", ");
  return [
    "# Fashion-MNIST learning curves",
    "",
    `Generated by \`${c.command}\` from its results file; every number below is a recorded evaluation.`,
    "",
    c.partial
      ? `**Partial run.** Steps reached per method: ${reached} (of ${b.steps}). The run resumes where it stopped with the same command; finished stages are not redone.`
      : `Complete: every method reached ${b.steps} steps.`,
    "",
    `![Learning curves](${c.plotFile})`,
    "",
    `Frozen-feature top-1 (%) on ${b.testImages ?? "all"} test images: weighted k-NN (k = ${b.knnK}) / linear probe with ${+(100 * (b.curveFractions ?? [0.1])[0]).toPrecision(3)} % of the labels, after each number of pretraining steps (batch ${b.batchSize}, first ${b.pretrainImages ?? "all"} training images, labels unused). Random init. is the same untrained ViT at every step.`,
    "",
    renderCurveTable(c.results, b),
    "",
    "SiT minus MoCo v3 (percentage points, k-NN / linear) at the steps both reached:",
    "",
    gaps.length
      ? gaps
          .map(
            (g) =>
              `- step ${g.step}: ${g.knn >= 0 ? "+" : ""}${g.knn.toFixed(1)} / ${g.linear >= 0 ? "+" : ""}${g.linear.toFixed(1)}`,
          )
          .join("\n")
      : "- none yet",
    "",
    `Machine: ${c.machine}.`,
    "",
  ].join("\n");
}
