// What the browser test needs around Chromium: find the binary, build and serve the page, open it
// with the console watched. Kept apart from the assertions (playground.test.ts).
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, type Download, type Page, chromium } from "playwright-core";
import type { PlaygroundStatus } from "./main";
import { serveStatic } from "./static-server";

/** This example's folder. */
export const EXAMPLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Screenshots, downloads and the test build (gitignored). */
export const OUTPUT_DIR = join(EXAMPLE_DIR, "test-output");

/** Chromium to drive: `SIT_CHROMIUM`, else Debian's `chromium`; undefined when there is none. */
export function findChromium(): string | undefined {
  const candidates = [process.env.SIT_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  return candidates.find((p): p is string => !!p && existsSync(p));
}

/**
 * The built page: `SIT_PLAYGROUND_DIST` when set (a `vite build` output, e.g. `dist` after this
 * example's `npm run build`), else a fresh `vite build` into test-output/dist.
 */
export async function builtPage(): Promise<string> {
  const given = process.env.SIT_PLAYGROUND_DIST;
  if (given) {
    if (!existsSync(join(given, "index.html")))
      throw new Error(`SIT_PLAYGROUND_DIST: no index.html in ${given}`);
    return given;
  }
  const outDir = join(OUTPUT_DIR, "dist");
  const { build } = await import("vite");
  await build({
    configFile: join(EXAMPLE_DIR, "vite.config.ts"),
    root: EXAMPLE_DIR,
    logLevel: "error",
    build: { outDir, emptyOutDir: true },
  });
  return outDir;
}

/** Chromium flags: WebGPU on (headless Chromium then offers SwiftShader's software adapter). */
export const CHROMIUM_ARGS = ["--enable-unsafe-webgpu"];

/** A served page and a browser, closed together. */
export interface Session {
  url: string;
  browser: Browser;
  close(): Promise<void>;
}

export async function openSession(executablePath: string, dist: string): Promise<Session> {
  const server = await serveStatic(dist);
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  mkdirSync(OUTPUT_DIR, { recursive: true });
  return {
    url: server.url,
    browser,
    close: async () => {
      await browser.close();
      await server.close();
    },
  };
}

/** A new page whose console errors and uncaught exceptions are collected into `errors`. */
export async function watchedPage(session: Session): Promise<{ page: Page; errors: string[] }> {
  const page = await session.browser.newPage({
    acceptDownloads: true,
    viewport: { width: 1300, height: 900 },
  });
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
  return { page, errors };
}

/** What the page exposes as `globalThis.playground` (main.ts's, read through the browser). */
export type PageStatus = PlaygroundStatus;

export function status(page: Page): Promise<PageStatus> {
  return page.evaluate(() => (globalThis as unknown as { playground: PageStatus }).playground);
}

/** Wait until the run is finished (or failed), polling the page's status. */
export async function waitFinished(page: Page, timeoutMs: number): Promise<PageStatus> {
  await page.waitForFunction(
    () => {
      const s = (globalThis as unknown as { playground?: PageStatus }).playground;
      return !!s && (s.state === "finished" || s.errors.length > 0);
    },
    undefined,
    { timeout: timeoutMs, polling: 250 },
  );
  return status(page);
}

/**
 * Fraction of the pixels of each canvas in `selector` that differ from the canvas's first pixel
 * (0 for a blank canvas).
 */
export function canvasVariety(page: Page, selector: string): Promise<number[]> {
  return page.$$eval(selector, (canvases) =>
    (canvases as HTMLCanvasElement[]).map((c) => {
      const { data } = c.getContext("2d")!.getImageData(0, 0, c.width, c.height);
      let differ = 0;
      for (let i = 0; i < data.length; i += 4)
        if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) differ++;
      return differ / (data.length / 4);
    }),
  );
}

/**
 * Click the page's Download button and save what it hands over (`checkpoint-<step>.safetensors`
 * and the run's `config.json`) into `dir`.
 */
export async function downloadCheckpoint(
  page: Page,
  dir: string,
): Promise<{ checkpoint: string; config: string }> {
  const saved: string[] = [];
  const both = new Promise<void>((resolve) => {
    const onDownload = async (d: Download) => {
      const path = join(dir, d.suggestedFilename());
      await d.saveAs(path);
      saved.push(path);
      if (saved.length === 2) {
        page.off("download", onDownload);
        resolve();
      }
    };
    page.on("download", onDownload);
  });
  await page.click("#download");
  await both;
  const config = saved.find((p) => p.endsWith(".json"));
  const checkpoint = saved.find((p) => p.endsWith(".safetensors"));
  if (!config || !checkpoint)
    throw new Error(`expected a checkpoint and config.json, got ${saved.join(", ")}`);
  return { checkpoint, config };
}

/**
 * The WebGPU adapter the page's browser offers, described as @sit/core's `initBackend` describes it
 * (`software`: a CPU rasteriser such as SwiftShader or lavapipe, or the browser's fallback adapter).
 */
export function webgpuAdapter(
  page: Page,
): Promise<{ found: boolean; software: boolean; description: string }> {
  return page.evaluate(async () => {
    const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    const adapter = (await gpu?.requestAdapter()) as
      | {
          isFallbackAdapter?: boolean;
          info?: {
            vendor?: string;
            architecture?: string;
            description?: string;
            isFallbackAdapter?: boolean;
          };
        }
      | null
      | undefined;
    if (!adapter) return { found: false, software: false, description: "none" };
    const info = adapter.info ?? {};
    const description =
      [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") || "unknown";
    const software =
      adapter.isFallbackAdapter === true ||
      info.isFallbackAdapter === true ||
      /swiftshader|llvmpipe|lavapipe|software/i.test(description);
    return { found: true, software, description };
  });
}
