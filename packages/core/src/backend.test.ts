import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { type BackendName, initBackend as initBackendInPage } from "./backend";
import { initBackend } from "./backend-node";
import { BackendError, ConfigError } from "./errors";

const requireHere = createRequire(import.meta.url);
function installed(id: string): boolean {
  try {
    requireHere.resolve(id);
    return true;
  } catch {
    return false;
  }
}

// Gradients must be registered whichever backend runs (tfjs-core alone registers none).
async function gradientWorks(): Promise<number[]> {
  const g = tf.grad((x: tf.Tensor) => tf.div(x, tf.scalar(4)).sum())(tf.tensor1d([1, 2]));
  return Array.from(await g.data());
}

describe("initBackend (@sit/core/node)", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("starts cpu when asked, reports it, and gradients work", async () => {
    const lines: string[] = [];
    const info = await initBackend("cpu", { log: (l) => lines.push(l) });
    expect(info).toMatchObject({ name: "cpu", reason: "requested", skipped: [] });
    expect(tf.getBackend()).toBe("cpu");
    expect(lines).toEqual(["[sit] backend: cpu via @tensorflow/tfjs (cpu)"]);
    expect(await gradientWorks()).toEqual([0.25, 0.25]);
  });

  it("starts wasm with SIMD and, on a multi-core machine, several threads", async () => {
    const lines: string[] = [];
    const info = await initBackend("wasm", { log: (l) => lines.push(l) });
    expect(info.name).toBe("wasm");
    expect(tf.getBackend()).toBe("wasm");
    expect(info.simd).toBe(true);
    const cores = availableParallelism();
    const wanted = Math.min(cores, 8, Number(process.env.SIT_WASM_THREADS || 8));
    expect(info.threads, info.note).toBe(wanted);
    expect(lines[0]).toMatch(
      /^\[sit\] backend: wasm via @tensorflow\/tfjs-backend-wasm \(\d+ threads?, SIMD/,
    );
    // The .wasm binary was found in node_modules with no set-up, and computes.
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    expect(Array.from(await tf.matMul(a, a).data())).toEqual([7, 10, 15, 22]);
    expect(await gradientWorks()).toEqual([0.25, 0.25]);
    // Asking again reuses the running backend, and says so when the thread count differs.
    expect((await initBackend("wasm", { log: false })).threads).toBe(info.threads);
    const again = await initBackend("wasm", {
      log: false,
      wasmThreads: info.threads === 1 ? 2 : 1,
    });
    expect(again.note).toMatch(/already started with/);
  });

  it("auto picks the first candidate that starts and says why it skipped the others", async () => {
    const info = await initBackend(["tensorflow", "wasm", "cpu"], { log: false });
    const order: BackendName[] = ["tensorflow", "wasm", "cpu"];
    expect(order.indexOf(info.name)).toBe(info.skipped.length);
    for (const s of info.skipped) expect(s.reason.length).toBeGreaterThan(0);
    if (!installed("@tensorflow/tfjs-node") && !installed("@tensorflow/tfjs-node-gpu")) {
      expect(info.name).toBe("wasm");
      expect(info.skipped[0].reason).toMatch(/@tensorflow\/tfjs-node-gpu is not installed/);
      expect(info.reason).toBe("first that started");
    }
  });

  it("rejects an unknown backend name, from the argument or SIT_BACKEND", async () => {
    await expect(initBackend("cuda" as BackendName)).rejects.toThrow(BackendError);
    await expect(initBackend("cuda" as BackendName)).rejects.toThrow(
      'preference: expected one of tensorflow, webgpu, wasm, cpu or "auto", got "cuda"',
    );
    const saved = process.env.SIT_BACKEND;
    process.env.SIT_BACKEND = "metal";
    try {
      await expect(initBackend()).rejects.toThrow(/SIT_BACKEND: expected one of .* got "metal"/);
    } finally {
      if (saved === undefined) delete process.env.SIT_BACKEND;
      else process.env.SIT_BACKEND = saved;
    }
    await expect(initBackend("wasm", { wasmThreads: 0 })).rejects.toThrow(ConfigError);
    const threads = process.env.SIT_WASM_THREADS;
    process.env.SIT_WASM_THREADS = "many";
    try {
      await expect(initBackend("wasm", { log: false })).rejects.toThrow(
        'SIT_WASM_THREADS: expected an integer from 1 to 8, got "many"',
      );
    } finally {
      if (threads === undefined) delete process.env.SIT_WASM_THREADS;
      else process.env.SIT_WASM_THREADS = threads;
    }
  });

  it('"auto" and no argument honour SIT_BACKEND; a named backend wins over it', async () => {
    const saved = process.env.SIT_BACKEND;
    // cpu: the one backend that "auto" never picks while wasm can start.
    process.env.SIT_BACKEND = "cpu";
    try {
      expect((await initBackend("auto", { log: false })).name).toBe("cpu");
      expect((await initBackend(undefined, { log: false })).name).toBe("cpu");
      const named = await initBackend("wasm", { log: false });
      expect(named).toMatchObject({ name: "wasm", reason: "requested" });
      expect(tf.getBackend()).toBe("wasm");
      process.env.SIT_BACKEND = "cuda";
      await expect(initBackend("auto", { log: false })).rejects.toThrow(
        /SIT_BACKEND: expected one of .* got "cuda"/,
      );
    } finally {
      if (saved === undefined) delete process.env.SIT_BACKEND;
      else process.env.SIT_BACKEND = saved;
      await tf.setBackend("cpu");
    }
  });

  it("names the package to install when the requested backend is missing", async (ctx) => {
    if (installed("@tensorflow/tfjs-node") || installed("@tensorflow/tfjs-node-gpu")) {
      console.warn("[skip] tfjs-node is installed here, so 'tensorflow' cannot be missing");
      ctx.skip();
    }
    await expect(initBackend("tensorflow", { log: false })).rejects.toThrow(
      /backend "tensorflow" is not available: @tensorflow\/tfjs-node-gpu is not installed; @tensorflow\/tfjs-node is not installed\. Install it with: npm install @tensorflow\/tfjs-node-gpu \(CUDA\) or @tensorflow\/tfjs-node \(CPU\)/,
    );
  });
});

describe("initBackend (@sit/core, a web page's)", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("tries webgpu, then wasm, then cpu, and reads no environment variable", async () => {
    const saved = process.env.SIT_BACKEND;
    // A page has no environment: SIT_BACKEND=cpu would make Node's initBackend pick cpu.
    process.env.SIT_BACKEND = "cpu";
    try {
      const info = await initBackendInPage(undefined, { log: false, wasmThreads: 1 });
      expect(info.name).toBe("wasm");
      expect(info.skipped).toEqual([
        {
          name: "webgpu",
          reason:
            "no navigator.gpu here: under Node, initBackend from @sit/core/node starts WebGPU through Dawn",
        },
      ]);
      expect(tf.getBackend()).toBe("wasm");
    } finally {
      if (saved === undefined) delete process.env.SIT_BACKEND;
      else process.env.SIT_BACKEND = saved;
    }
  });

  it("says that tfjs-node is Node's, and where Node's initBackend is", async () => {
    await expect(initBackendInPage("tensorflow", { log: false })).rejects.toThrow(
      /tensorflow \(tfjs-node\) runs under Node only: use initBackend from @sit\/core\/node/,
    );
  });
});
