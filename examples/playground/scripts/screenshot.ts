// Regenerates docs/images/playground.png, the README's picture of the playground, from the real
// page: it builds and serves the page as the browser test does (src/browser-harness.ts), lets
// Debian's Chromium train a short SiT run on wasm, and screenshots the whole page once the run's
// last charts, pictures and k-NN value are drawn. It prints what the caption should say (losses,
// k-NN, time, load), so the README's caption can be checked against the picture.
//
//   npm run screenshot -w @sit/example-playground [-- --preset small --steps 600 --out <png>]
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  EXAMPLE_DIR,
  builtPage,
  canvasVariety,
  findChromium,
  openSession,
  waitFinished,
  watchedPage,
} from "../src/browser-harness";

const { values: opts } = parseArgs({
  options: {
    preset: { type: "string", default: "small" },
    steps: { type: "string", default: "600" },
    pictures: { type: "string", default: "50" },
    knn: { type: "string", default: "100" },
    backend: { type: "string", default: "wasm" },
    out: { type: "string", default: join(EXAMPLE_DIR, "..", "..", "docs/images/playground.png") },
    "timeout-min": { type: "string", default: "20" },
  },
});

function positiveInt(name: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`--${name}: expected an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}
const steps = positiveInt("steps", opts.steps, 1);
const pictures = positiveInt("pictures", opts.pictures, 1);
const knn = positiveInt("knn", opts.knn, 0);
const timeoutMs = positiveInt("timeout-min", opts["timeout-min"], 1) * 60_000;
const out = resolve(opts.out!);

const chromium = findChromium();
if (!chromium)
  throw new Error("no Chromium binary: install Debian's chromium, or set SIT_CHROMIUM to one");

const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

console.log(`building the page… (load average ${load()})`);
const session = await openSession(chromium, await builtPage());
try {
  const { page, errors } = await watchedPage(session);
  const query = `?preset=${opts.preset}&backend=${opts.backend}&pictures=${pictures}&knn=${knn}&steps=${steps}&autostart=1`;
  await page.goto(session.url + query);
  // The page keeps an unknown preset's select empty: say which exist.
  const preset = await page.$eval("#preset", (s) => ({
    value: (s as HTMLSelectElement).value,
    names: [...(s as HTMLSelectElement).options].map((o) => o.value),
  }));
  if (preset.value !== opts.preset)
    throw new Error(`--preset: expected one of ${preset.names.join(", ")}, got ${opts.preset}`);

  const started = Date.now();
  const loadAtStart = load();
  console.log(
    `training ${steps} steps of "${opts.preset}" on ${opts.backend} (load ${loadAtStart})…`,
  );
  const s = await waitFinished(page, timeoutMs);
  const seconds = (Date.now() - started) / 1000;
  if (s.errors.length > 0 || errors.length > 0)
    throw new Error(`the page reported errors:\n${[...s.errors, ...errors].join("\n")}`);
  if (s.backend !== opts.backend)
    throw new Error(`--backend: asked for ${opts.backend}, the page started ${s.backend}`);

  // The last report's pictures and k-NN value arrive after the run's end: wait for them, so that
  // the picture shows the run's final state and not the one before.
  await page.waitForFunction(
    (last) =>
      (document.querySelector("#reconstructions")?.textContent ?? "").includes(`Step ${last}:`) &&
      (document.querySelector("#attention")?.textContent ?? "").includes(`Step ${last}:`),
    steps,
    { timeout: 120_000, polling: 250 },
  );
  if (knn > 0)
    await page.waitForFunction(
      (last) =>
        (document.querySelector("#knn-line")?.textContent ?? "").includes(`at step ${last}:`),
      steps,
      { timeout: 120_000, polling: 250 },
    );
  // The pictures that only a working run draws (as the browser test checks them): the
  // reconstructions (third row) and the attention overlays (second row) are not blank.
  for (const [what, selector] of [
    ["reconstruction", "#reconstructions tr:nth-child(3) canvas"],
    ["attention overlay", "#attention tr:nth-child(2) canvas"],
  ]) {
    const variety = await canvasVariety(page, selector);
    if (variety.length === 0 || variety.some((v) => v < 0.01))
      throw new Error(
        `${what} canvases: expected pictures (≥ 1 % of pixels unlike the first), got ${variety.map((v) => v.toFixed(3)).join(", ") || "none"}; no screenshot taken`,
      );
  }

  await page.screenshot({ path: out, fullPage: true });
  const losses = s.losses.map((l) => l.loss);
  const knnLine = await page.textContent("#knn-line");
  console.log(
    [
      `wrote ${out}`,
      `Chromium ${session.browser.version()}; backend ${s.backend} (${s.threads ?? "?"} threads); ${s.losses.length} steps in ${seconds.toFixed(0)} s`,
      `load average (1, 5, 15 min): ${loadAtStart} at the start, ${load()} at the end`,
      `loss: mean of the first 5 steps ${mean(losses.slice(0, 5)).toFixed(2)}, of the last 5 ${mean(losses.slice(-5)).toFixed(2)}`,
      `images/s: median ${median(s.imagesPerSec).toFixed(1)}`,
      `k-NN: ${s.knn.map((k) => `step ${k.step} ${(100 * k.top1).toFixed(1)} %`).join(", ")}`,
      `page: ${knnLine}`,
    ].join("\n"),
  );
} finally {
  await session.close();
}
