// Host side of the WebGPU SiT step's GMML corruption: `npx tsx tools/bench/gmml-plan.ts` prints
// JSON. `corruptViewsStacked` on a device backend draws two views' plans on the host and uploads
// them; its device half cannot run here, so this times the host half alone: `GmmlMasker.plan` of
// one view and `planStackedViews` of two (everything corruptViewsStacked computes before the
// uploads), for ViT-S/16's batch [64, 224, 224, 3]. Fresh arrays every call, as in training; on
// a sandboxed VM their first-touch page faults can cost more than the loops (compare the minimum
// with the median, and the CPU time's system share).
import { loadavg } from "node:os";
import { Rng } from "../../packages/core/src/index";
import { planStackedViews } from "../../packages/gmml/src/corrupt-views";
import { GmmlMasker, type GmmlMaskerOptions } from "../../packages/gmml/src/index";

const shape: [number, number, number, number] = [64, 224, 224, 3];
const cases: [string, GmmlMaskerOptions][] = [
  ["defaults-p16", { patchSize: 16 }],
  ["zeros+noise-p16", { patchSize: 16, fill: ["zeros", "noise"] }],
  ["noise-p16", { patchSize: 16, fill: "noise" }],
];
const warmup = 3;
const iters = 20;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const ms = (x: number) => Number(x.toFixed(1));

const loadBefore = loadavg();
const results = [];
for (const [name, options] of cases) {
  const masker = new GmmlMasker(options);
  const rng = Rng.seed(42);
  const plan: number[] = [];
  const stacked: number[] = [];
  const stackedCpu: number[] = [];
  for (let i = 0; i < warmup + iters; i++) {
    const t0 = performance.now();
    masker.plan(shape, rng);
    const t1 = performance.now();
    const cpu0 = process.cpuUsage();
    planStackedViews(masker, shape, 2, rng);
    const cpu = process.cpuUsage(cpu0);
    const t2 = performance.now();
    if (i < warmup) continue;
    plan.push(t1 - t0);
    stacked.push(t2 - t1);
    stackedCpu.push((cpu.user + cpu.system) / 1000);
  }
  results.push({
    case: name,
    options,
    planMedianMs: ms(median(plan)),
    planMinMs: ms(Math.min(...plan)),
    stackedTwoViewsMedianMs: ms(median(stacked)),
    stackedTwoViewsMinMs: ms(Math.min(...stacked)),
    // The process's CPU time (all threads, GC and page faults included): less sensitive to load.
    stackedTwoViewsCpuMedianMs: ms(median(stackedCpu)),
  });
}
console.log(
  JSON.stringify(
    {
      node: process.version,
      shape,
      views: 2,
      iters,
      loadavg: { before: loadBefore, after: loadavg() },
      results,
    },
    null,
    2,
  ),
);
