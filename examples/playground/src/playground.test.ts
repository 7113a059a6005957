// The playground in a real browser: Debian's Chromium driven by playwright-core. Skips, saying
// why, where no Chromium binary exists. Screenshots and downloads go to test-output/ (gitignored).
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { type CliIO, loadModel, pretrain, pretrainSchema } from "@sit/cli";
import { listKernelOverrides } from "@sit/kernels";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EXAMPLE_DIR,
  OUTPUT_DIR,
  type Session,
  builtPage,
  canvasVariety,
  downloadCheckpoint,
  findChromium,
  openSession,
  status,
  waitFinished,
  webgpuAdapter,
  watchedPage,
} from "./browser-harness";

const chromiumPath = findChromium();
const reason = chromiumPath
  ? `Chromium at ${chromiumPath}`
  : "skipped: no Chromium binary (install Debian's chromium, or set SIT_CHROMIUM to one)";
const webgpuMode = process.env.SIT_PLAYGROUND_WEBGPU;
/** How long to wait for the page to show something (a busy 2-core machine is slow). */
const POLL = { timeout: 30_000, interval: 200 };
const IMAGES_DIR = join(EXAMPLE_DIR, "..", "..", "docs", "images");
const quietIO: CliIO = { out: () => {}, err: () => {}, quiet: true };

/** Training steps of the test runs (the test preset: D 32, depth 1, batch 16). */
const STEPS = 30;
const query = (backend: string, extra = "") =>
  `?preset=test&backend=${backend}&pictures=10&knn=15&steps=${STEPS}&autostart=1${extra}`;

/**
 * A finished run of the test preset on `backend`: finite, falling loss over {@link STEPS} steps;
 * reconstructions and attention overlays drawn (not blank); the k-NN value shown beside random init.
 */
async function checkRun(page: Page, backend: string): Promise<void> {
  const s = await waitFinished(page, 150_000);
  expect(s.errors).toEqual([]);
  expect(s.backend).toBe(backend);
  expect(s.losses.length).toBe(STEPS);
  const losses = s.losses.map((l) => l.loss);
  expect(losses.every(Number.isFinite)).toBe(true);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)));
  // Reconstructions (third row of the figure) and attention overlays (second row) are drawn.
  const rec = await canvasVariety(page, "#reconstructions tr:nth-child(3) canvas");
  const att = await canvasVariety(page, "#attention tr:nth-child(2) canvas");
  expect(rec.length).toBe(6);
  expect(att.length).toBe(6);
  for (const v of [...rec, ...att]) expect(v).toBeGreaterThan(0.05);
  // k-NN: the random-init value and the trained one are shown.
  expect(s.knn.length).toBeGreaterThanOrEqual(2);
  await expect
    .poll(() => page.textContent("#knn-line"), POLL)
    .toMatch(new RegExp(`k-NN top-1 at step ${STEPS}: \\d+\\.\\d % \\(random init \\d+\\.\\d %`));
}

describe.skipIf(!chromiumPath)(`playground in Chromium (${reason})`, () => {
  let session: Session;
  beforeAll(async () => {
    session = await openSession(chromiumPath!, await builtPage());
  }, 240_000);
  afterAll(async () => {
    await session?.close();
  });

  it(`trains ${STEPS} SiT steps on wasm on all cores: falling loss, pictures, k-NN, no console error; a checkpoint downloaded mid-run and the final one load in Node, the final one continues under sit pretrain --resume, and that one continues in the page`, async () => {
    const { page, errors } = await watchedPage(session);
    await page.goto(session.url + query("wasm"));

    // Download while the run trains (no pause): the worker writes it between two steps.
    await page.waitForFunction(
      () => {
        const s = (globalThis as unknown as { playground?: { state: string; losses: unknown[] } })
          .playground;
        return !!s && s.state === "running" && s.losses.length >= 3;
      },
      undefined,
      { timeout: 120_000, polling: 50 },
    );
    expect((await status(page)).state).toBe("running");
    const midRun = await downloadCheckpoint(page, OUTPUT_DIR);

    await checkRun(page, "wasm");
    await page.screenshot({ path: join(OUTPUT_DIR, "playground-wasm.png"), fullPage: true });
    // Threads: tfjs's threaded build once gave a page half its cores (1 of 2); the page now asks
    // for all of them (at most 8), as Node does.
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    const s = await status(page);
    expect(s.threads).toBe(Math.min(cores, 8));
    if (availableParallelism() >= 2) expect(s.threads).toBeGreaterThanOrEqual(2);
    // The page computes with the same @sit/kernels kernels as Node (its build once dropped them).
    const nodeKernels = listKernelOverrides()
      .filter((k) => k.backend === "wasm")
      .map((k) => k.name);
    expect(nodeKernels.length).toBeGreaterThan(0);
    expect([...s.kernels].sort()).toEqual(nodeKernels.sort());

    // The mid-run checkpoint is a consistent one of the CLI's own kind, at the step it was taken.
    const partial = await loadModel(midRun.checkpoint);
    try {
      expect(partial.step).toBeGreaterThanOrEqual(3);
      expect(partial.step).toBeLessThan(STEPS);
      expect(midRun.checkpoint).toMatch(
        new RegExp(`checkpoint-${String(partial.step).padStart(8, "0")}\\.safetensors$`),
      );
      expect(partial.run.data.dataset).toBe("fashion-mnist-bundled");
    } finally {
      partial.recipe.dispose();
    }

    // Download at the end: the checkpoint and its config.json.
    const { checkpoint, config: configFile } = await downloadCheckpoint(page, OUTPUT_DIR);
    expect(checkpoint).toMatch(/checkpoint-00000030\.safetensors$/);
    expect(errors).toEqual([]);

    // The page's checkpoint loads in Node as the CLI's own (recipe, run description, step)…
    const model = await loadModel(checkpoint);
    try {
      expect(model.step).toBe(STEPS);
      expect(model.run.data.dataset).toBe("fashion-mnist-bundled");
    } finally {
      model.recipe.dispose();
    }
    // …and `sit pretrain --config config.json --resume <it>` continues it for 2 more steps.
    const out = mkdtempSync(join(tmpdir(), "sit-playground-"));
    const config = pretrainSchema.parse({
      ...JSON.parse(readFileSync(configFile, "utf8")),
      backend: "wasm",
      out,
      train: { steps: STEPS + 2, tensorboard: false },
    });
    const cli = await pretrain(config, quietIO, { resume: checkpoint, handleSignals: false });
    expect(cli.resumedFrom).toBe(checkpoint);
    expect(cli.steps).toBe(STEPS + 2);
    expect(cli.checkpoint).toBeDefined();

    // The CLI's checkpoint opens in the page, and Start continues it from step 32.
    const next = await watchedPage(session);
    await next.page.goto(`${session.url}?backend=wasm&pictures=0&knn=0&steps=${STEPS + 6}`);
    await next.page.waitForSelector("#start:not([disabled])", { timeout: 60_000 });
    await next.page.setInputFiles("#open-checkpoint", cli.checkpoint!);
    await expect
      .poll(() => next.page.textContent("#checkpoint-line"), POLL)
      .toMatch(/^Opened .* at step 32/);
    await next.page.click("#start");
    const resumed = await waitFinished(next.page, 60_000);
    expect(resumed.errors).toEqual([]);
    expect(resumed.losses.map((l) => l.step)).toEqual([32, 33, 34, 35]);
    expect(next.errors).toEqual([]);
  }, 240_000);

  it("decodes dropped image files with the browser's own decoders and shows them under GMML", async () => {
    const { page, errors } = await watchedPage(session);
    await page.goto(`${session.url}?backend=cpu`);
    await expect.poll(() => page.textContent("#data-line"), POLL).toMatch(/^Fashion-MNIST subset/);
    // Five PNGs of this repository, and a file that is no image (left out).
    const images = readdirSync(IMAGES_DIR)
      .filter((f) => f.endsWith(".png"))
      .slice(0, 5)
      .map((f) => join(IMAGES_DIR, f));
    await page.setInputFiles("#pick-files", [...images, join(EXAMPLE_DIR, "package.json")]);
    await expect
      .poll(() => page.textContent("#data-line"), POLL)
      .toMatch(/^Your images: 5 training images and 5 held out, 64×64 px, RGB, no labels/);
    // The GMML panel now corrupts the dropped images: 5 originals, 5 corrupted, 5 masks.
    await expect
      .poll(async () => (await canvasVariety(page, "#gmml-panel canvas")).length, POLL)
      .toBe(15);
    expect(errors).toEqual([]);
  }, 60_000);

  // Runs where the browser offers a GPU adapter; skips, saying why, where it offers none or only
  // a software one (headless Chromium 156 offers only SwiftShader, whatever Vulkan driver is
  // installed: see the README). SIT_PLAYGROUND_WEBGPU=software trains on a software adapter too.
  it(`trains ${STEPS} SiT steps on webgpu where Chromium has a GPU adapter`, async (ctx) => {
    const { page, errors } = await watchedPage(session);
    await page.goto(`${session.url}?backend=cpu`);
    const adapter = await webgpuAdapter(page);
    const software = webgpuMode === "software";
    if (!adapter.found || (adapter.software && !software)) {
      const why = !adapter.found
        ? "Chromium offers no WebGPU adapter"
        : `Chromium offers only a software WebGPU adapter (${adapter.description}); SIT_PLAYGROUND_WEBGPU=software trains on it`;
      console.info(`[playground test] webgpu run skipped: ${why}`);
      ctx.skip();
      return;
    }
    await page.goto(session.url + query("webgpu", software ? "&software=1" : ""));
    await checkRun(page, "webgpu");
    await page.screenshot({ path: join(OUTPUT_DIR, "playground-webgpu.png"), fullPage: true });
    expect(errors).toEqual([]);
  }, 240_000);
});
