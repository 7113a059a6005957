// The page: data, the live GMML panel, and the training worker's reports. URL parameters preset
// the controls (the browser test uses them): ?preset=test&backend=wasm&pictures=10&knn=20&steps=40&autostart=1
import { decodeDroppedImages, loadBundledFashionMnist } from "./data";
import { GmmlPanel } from "./gmml-panel";
import type { FromWorker, PretrainConfigJson, RunState, ToWorker, TrainingData } from "./protocol";
import {
  type GmmlSettings,
  MODEL_PRESETS,
  PATCH_SIZE,
  type PresetName,
  pageConfig,
  describePageRun,
} from "./run-config";
import { Charts, attentionFigure, reconstructionFigure } from "./views";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

/** What the page has seen, for the browser test and the console (read-only by convention). */
export interface PlaygroundStatus {
  backend: string | null;
  /** WASM: XNNPACK threads of the started backend (absent on the others). */
  threads?: number;
  /** WebGPU: the adapter's description. */
  adapter?: string;
  /** @sit/kernels' operations with a kernel of the backend. */
  kernels: string[];
  state: RunState;
  losses: Array<{ step: number; loss: number }>;
  knn: Array<{ step: number; top1: number }>;
  imagesPerSec: number[];
  errors: string[];
  checkpoints: number;
}
const status: PlaygroundStatus = {
  backend: null,
  kernels: [],
  state: "no-backend",
  losses: [],
  knn: [],
  imagesPerSec: [],
  errors: [],
  checkpoints: 0,
};
(globalThis as unknown as { playground: PlaygroundStatus }).playground = status;

let data: TrainingData | null = null;
let gmmlSettings: GmmlSettings | null = null;
/** A checkpoint opened from a file: the next Start continues it. */
let opened: { name: string; bytes: Uint8Array; config: PretrainConfigJson; step: number } | null =
  null;
const charts = new Charts();
$("charts").append(...charts.elements);

// Model presets.
const presetSelect = $<HTMLSelectElement>("preset");
for (const [name, p] of Object.entries(MODEL_PRESETS)) presetSelect.add(new Option(p.label, name));
presetSelect.value = params.get("preset") ?? "quickstart";
const backendSelect = $<HTMLSelectElement>("backend");
backendSelect.value = params.get("backend") ?? "auto";
for (const [id, key] of [
  ["pictures-every", "pictures"],
  ["knn-every", "knn"],
] as const) {
  const v = params.get(key);
  if (v) $<HTMLInputElement>(id).value = v;
}

const gmml = new GmmlPanel(PATCH_SIZE, (s) => {
  gmmlSettings = s;
});
$("gmml-panel").append(gmml.element);

function showData(d: TrainingData, note = ""): void {
  data = d;
  const classes = d.train.classNames
    ? `${d.train.classNames.length} classes`
    : "no labels (k-NN needs folders as classes)";
  $("data-line").textContent =
    `${d.source === "dropped" ? "Your images" : "Fashion-MNIST subset (bundled)"}: ${d.train.count} training images and ` +
    `${d.heldOut.count} held out, ${d.train.height}×${d.train.width} px, ${d.train.channels === 1 ? "grey" : "RGB"}, ${classes}.${note}`;
  const config = pageConfig(presetSelect.value as PresetName, gmml.settings(), d.source);
  gmml.setImages(d.train, describePageRun(config).stats);
  updateButtons(status.state);
}

// ---- the worker ----
let worker: Worker;
function startWorker(): void {
  worker?.terminate();
  worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  worker.onmessage = (e: MessageEvent<FromWorker>) => onMessage(e.data);
  worker.onerror = (e) => showError(`worker: ${e.message}`);
  send({
    type: "init",
    backend: backendSelect.value as "auto",
    allowSoftwareAdapter: params.get("software") === "1",
  });
}
function send(m: ToWorker, transfer: Transferable[] = []): void {
  worker.postMessage(m, transfer);
}

let knnSeen = 0;
function onMessage(m: FromWorker): void {
  if (m.type === "backend") {
    status.backend = m.name;
    status.threads = m.threads;
    status.adapter = m.adapter;
    status.kernels = m.kernels;
    $("backend-line").textContent = `Backend: ${m.name}${m.detail ? ` (${m.detail})` : ""}`;
  } else if (m.type === "state") {
    status.state = m.state;
    updateButtons(m.state);
    if (m.message) $("run-line").textContent = m.message;
  } else if (m.type === "step") {
    status.losses.push({ step: m.step, loss: m.loss });
    status.imagesPerSec.push(m.imagesPerSec);
    charts.step(m);
    const terms = Object.entries(m.terms)
      .map(([k, v]) => `${k} ${v.toFixed(4)}`)
      .join(", ");
    $("run-line").textContent =
      `step ${m.step + 1} of ${m.totalSteps}, epoch ${m.epoch + 1}; loss ${m.loss.toFixed(4)} (${terms}); ` +
      `lr ${m.lr.toExponential(2)}; ${m.imagesPerSec.toFixed(1)} images/s; ${m.elapsedSec.toFixed(0)} s`;
  } else if (m.type === "reconstruction") {
    $("reconstructions").replaceChildren(reconstructionFigure(m));
  } else if (m.type === "attention") {
    $("attention").replaceChildren(attentionFigure(m));
  } else if (m.type === "knn") {
    const first = knnSeen++ === 0;
    status.knn.push({ step: m.step, top1: m.top1 });
    charts.knnValue(m, first);
    const random = status.knn[0].top1;
    $("knn-line").textContent =
      `k-NN top-1 at step ${m.step}: ${(100 * m.top1).toFixed(1)} % (random init ${(100 * random).toFixed(1)} %; ` +
      `k = ${m.k}, ${m.trainRows} training images as memory, ${m.testRows} held-out queries, CLS features)`;
  } else if (m.type === "checkpoint") {
    status.checkpoints++;
    download(
      m.name,
      new Blob([m.bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }),
    );
    download(
      "config.json",
      new Blob([`${JSON.stringify(m.config, null, 2)}\n`], { type: "application/json" }),
    );
    $("checkpoint-line").textContent =
      `Downloaded ${m.name} (step ${m.step}, ${(m.bytes.length / 1e6).toFixed(1)} MB) and config.json.`;
  } else if (m.type === "opened") {
    $("checkpoint-line").textContent =
      `Opened ${m.name}: ${m.config.recipe} at step ${m.step}. Start continues it (its own model size and GMML settings).`;
  } else if (m.type === "error") showError(m.message);
}

function showError(message: string): void {
  status.errors.push(message);
  $("run-line").textContent = `Error: ${message}`;
}

function updateButtons(state: RunState): void {
  const is = (...s: RunState[]) => s.includes(state);
  // Start needs a started backend and the images.
  $<HTMLButtonElement>("start").disabled = !is("idle", "finished") || !data;
  $<HTMLButtonElement>("pause").disabled = !is("running");
  $<HTMLButtonElement>("resume").disabled = !is("paused");
  $<HTMLButtonElement>("reset").disabled = !is("running", "paused", "finished");
  $<HTMLButtonElement>("download").disabled = !is("running", "paused", "finished");
  presetSelect.disabled = !is("idle", "finished");
}

function download(name: string, blob: Blob): void {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

function start(): void {
  if (!data || !gmmlSettings) return;
  if (status.state === "finished") send({ type: "reset" });
  const config =
    opened?.config ?? pageConfig(presetSelect.value as PresetName, gmmlSettings, data.source);
  charts.clear();
  knnSeen = 0;
  status.losses = [];
  status.knn = [];
  status.imagesPerSec = [];
  const steps = params.get("steps");
  const every = {
    picturesSteps: Number($<HTMLInputElement>("pictures-every").value) || 0,
    knnSteps: Number($<HTMLInputElement>("knn-every").value) || 0,
  };
  send({
    type: "start",
    config,
    data,
    every,
    ...(steps ? { maxSteps: Number(steps) } : {}),
    ...(opened ? { resume: { name: opened.name, bytes: opened.bytes } } : {}),
  });
  opened = null;
}

$("start").addEventListener("click", start);
$("pause").addEventListener("click", () => send({ type: "pause" }));
$("resume").addEventListener("click", () => send({ type: "resume" }));
$("reset").addEventListener("click", () => send({ type: "reset" }));
$("download").addEventListener("click", () => send({ type: "save" }));
backendSelect.addEventListener("change", startWorker);
presetSelect.addEventListener("change", () => data && showData(data));
$("use-bundled").addEventListener("click", () => loadBundled());
$<HTMLInputElement>("open-checkpoint").addEventListener("change", async (e) => {
  const file = (e.target as HTMLInputElement).files?.[0];
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  send({ type: "open", name: file.name, bytes: bytes.slice() });
  const answer = await openedAnswer();
  opened = { name: file.name, bytes, config: answer.config, step: answer.step };
});

/** The worker's answer to `open`: the checkpoint's config and step. */
function openedAnswer(): Promise<Extract<FromWorker, { type: "opened" }>> {
  return new Promise((resolve) => {
    const listener = (e: MessageEvent<FromWorker>) => {
      if (e.data.type !== "opened") return;
      worker.removeEventListener("message", listener);
      resolve(e.data);
    };
    worker.addEventListener("message", listener);
  });
}

// Dropped files and folders.
async function useFiles(files: File[]): Promise<void> {
  $("data-line").textContent = `Decoding ${files.length} files…`;
  try {
    const { data: d, skipped } = await decodeDroppedImages(
      files.filter(
        (f) => f.type.startsWith("image/") || /\.(png|jpe?g|gif|webp|bmp|avif)$/i.test(f.name),
      ),
    );
    showData(
      d,
      skipped.length ? ` Skipped ${skipped.length} files the browser could not decode.` : "",
    );
  } catch (err) {
    $("data-line").textContent = `Could not use these files: ${(err as Error).message}`;
  }
}
for (const id of ["pick-files", "pick-folder"])
  $<HTMLInputElement>(id).addEventListener("change", (e) =>
    useFiles([...((e.target as HTMLInputElement).files ?? [])]),
  );
const zone = $("drop-zone");
zone.addEventListener("dragover", (e) => {
  e.preventDefault();
  zone.classList.add("over");
});
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", async (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  const entries = [...(e.dataTransfer?.items ?? [])]
    .map((i) => i.webkitGetAsEntry())
    .filter((x) => x !== null);
  await useFiles(await filesOf(entries));
});

/** Every file under dropped entries (folders walked), with its folder path kept for the classes. */
async function filesOf(entries: FileSystemEntry[]): Promise<File[]> {
  const out: File[] = [];
  const walk = async (entry: FileSystemEntry, dir: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((res, rej) =>
        (entry as FileSystemFileEntry).file(res, rej),
      );
      Object.defineProperty(file, "webkitRelativePath", { value: `${dir}${file.name}` });
      out.push(file);
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) =>
          reader.readEntries(res, rej),
        );
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${dir}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, "");
  return out;
}

async function loadBundled(): Promise<void> {
  try {
    showData(await loadBundledFashionMnist());
  } catch (err) {
    $("data-line").textContent = `Could not load the bundled images: ${(err as Error).message}`;
  }
}

updateButtons("no-backend");
startWorker();
await loadBundled();
if (params.get("autostart") === "1") {
  const go = () => (status.state === "idle" ? start() : setTimeout(go, 100));
  go();
}
