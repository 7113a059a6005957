// The few-rows product of @sit/kernels' wasm backend (matmul-kernels.wat) against XNNPACK, for a
// 4096 × 4096 weight (SiT's projection layer): XNNPACK with the weight already packed, XNNPACK
// after the weight changed in place (it repacks first: what every training step pays), and the
// heap loop; with `node --experimental-wasm-relaxed-simd --import tsx` also the heap loop with
// relaxed SIMD's fused multiply-add instead of multiply + add (Node 20 refuses it without the
// flag). Prints one JSON line per row count: the minimum over repetitions, in ms.
//   npx tsx tools/wasm/bench-small-product.ts [--rows 4,8,16,32] [--reps 5]
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import wabt from "wabt";
import { initBackend } from "../../packages/core/src/index";
import { WasmHeap } from "../../packages/kernels/src/wasm/heap";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const ROWS = option("rows", "4,8,16,32").split(",").map(Number);
const REPS = Number(option("reps", "5"));

await initBackend("wasm", { log: false });
const heap = WasmHeap.active();
const heapMemory = heap.memory();
if (!heapMemory) throw new Error("bench-small-product: the wasm backend exposes no memory");
const memory: WebAssembly.Memory = heapMemory;
const shared = memory.buffer instanceof SharedArrayBuffer;
const source = readFileSync(
  new URL("../../packages/kernels/src/wasm/matmul-kernels.wat", import.meta.url),
  "utf8",
).replace(
  ";; @memory",
  shared ? '(import "env" "memory" (memory 1 65536 shared))' : '(import "env" "memory" (memory 1))',
);
// (f32x4.add ACC (f32x4.mul S W)) → (f32x4.relaxed_madd S W ACC), the loop otherwise unchanged.
const relaxedSource = source.replace(
  /\(f32x4\.add \(([^()]*(?:\([^()]*\))?[^()]*)\)\s*\(f32x4\.mul \(local\.get (\$s\d)\) (\(v128\.load align=4 (?:\(i32\.add \(local\.get \$wp\) \(local\.get \$r\d\)\)|\(local\.get \$wp\))\))\)\)/g,
  (_m, acc, s, w) => `(f32x4.relaxed_madd (local.get ${s}) ${w} (${acc}))`,
);
type Gemm = (...args: number[]) => void;
const w = await wabt();
function build(wat: string): Gemm | null {
  const features = { simd: true, threads: true, relaxed_simd: true };
  const m = w.parseWat("matmul-kernels.wat", wat, features as never);
  try {
    (m.validate as (f?: object) => void)(features);
    const binary = new Uint8Array(m.toBinary({}).buffer);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(binary), { env: { memory } });
    return instance.exports.gemm_small as Gemm;
  } catch {
    return null; // relaxed SIMD refused by this engine
  } finally {
    m.destroy();
  }
}
const plain = build(source);
const relaxed = build(relaxedSource);
if (!plain) throw new Error("bench-small-product: this engine cannot run the SIMD module");

const minMs = (f: () => void) => {
  f();
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    f();
    best = Math.min(best, performance.now() - t0);
  }
  return Math.round(best * 10) / 10;
};
const [K, N] = [4096, 4096];
for (const M of ROWS) {
  const x = tf.randomNormal([M, K]) as tf.Tensor2D;
  const weight = tf.randomNormal([K, N]) as tf.Tensor2D;
  const out = heap.fresh([M, N]);
  const loop = (g: Gemm) => () =>
    g(heap.offset(out) * 4, heap.offset(x) * 4, heap.offset(weight) * 4, 0, 0, M, K, N);
  const xnnpack = () => tf.matMul(x, weight).dispose();
  console.log(
    JSON.stringify({
      rows: M,
      weight: [K, N],
      xnnpack_packed_ms: minMs(xnnpack),
      xnnpack_after_change_ms: minMs(() => {
        heap.changed(weight);
        xnnpack();
      }),
      heap_loop_ms: minMs(loop(plain)),
      heap_loop_relaxed_madd_ms: relaxed ? minMs(loop(relaxed)) : "refused (no relaxed SIMD)",
      loadavg: (await import("node:os")).loadavg().map((l) => Math.round(l * 100) / 100),
    }),
  );
  tf.dispose([x, weight, out]);
}
