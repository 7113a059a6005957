#!/usr/bin/env bash
# Packs the GPU bench into one self-contained folder (default: bench-gpu/ at the repo root,
# git-ignored) that runs on an x86-64 Linux machine with python3 + torch and no Node, no
# node_modules and no network:  bash bench-gpu/run.sh   (see tools/bench/gpu/README.md).
#   node.xz            this machine's node, stripped and xz-compressed (cached across packs)
#   app/               esbuild bundle of sit_step.ts + gemm-webgpu.ts + check-kernels.ts (tfjs,
#                      webgpu backend, @sit/* sources), sit_step_torch.py, gemm_torch.py, summary.py
#   app/dist/linux-x64.dawn.node.xz   the `webgpu` package's Dawn addon (next to the bundle)
#   lib/libvulkan.so.1 the Vulkan loader, used only when the machine has none
# Usage: bash tools/bench/gpu/pack.sh [outdir]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/bench-gpu}")
NODE_BIN=$(command -v node)
cd "$ROOT"

mkdir -p "$OUT"
# node.xz takes minutes to make: keep it when the same node binary made it.
stamp="$(sha256sum "$NODE_BIN" | cut -c1-16) $($NODE_BIN --version)"
if [[ ! -f "$OUT/node.xz" || "$(cat "$OUT/node.stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "[pack] compressing $NODE_BIN ($($NODE_BIN --version)) ..." >&2
  tmp=$(mktemp -d)
  cp "$NODE_BIN" "$tmp/node" && strip "$tmp/node"
  xz -T0 -9 -c "$tmp/node" >"$OUT/node.xz.part" && mv "$OUT/node.xz.part" "$OUT/node.xz"
  rm -rf "$tmp"
  echo "$stamp" >"$OUT/node.stamp"
fi

rm -rf "$OUT/app" "$OUT/lib"
mkdir -p "$OUT/app/dist" "$OUT/lib"
npx tsx tools/bench/gpu/bundle.ts "$OUT/app"
DAWN=node_modules/webgpu/dist/linux-x64.dawn.node
xz -T0 -6 -c "$DAWN" >"$OUT/app/dist/linux-x64.dawn.node.xz"
cp tools/bench/sit_step_torch.py tools/bench/gemm_torch.py tools/bench/gpu/summary.py "$OUT/app/"
cp tools/bench/gpu/run.sh "$OUT/run.sh"
chmod +x "$OUT/run.sh"
cp -L /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$OUT/lib/libvulkan.so.1"
# NVIDIA's Vulkan ICD is libGLX_nvidia.so.0, which needs GLVND (libGLdispatch, libGLX): a bare GPU
# image may lack them ("Could not get vkCreateInstance via vk_icdGetInstanceProcAddr", measured on
# the H100 machine). Ship Debian's GLVND libraries beside the loader.
GLVND=$(mktemp -d)
for so in libGLdispatch.so.0 libGLX.so.0 libEGL.so.1 libOpenGL.so.0 libGL.so.1 libGLESv2.so.2; do
  if [[ -e /usr/lib/x86_64-linux-gnu/$so ]]; then cp -L "/usr/lib/x86_64-linux-gnu/$so" "$OUT/lib/$so"; fi
done
if [[ ! -e $OUT/lib/libGLdispatch.so.0 ]]; then
  (cd "$GLVND" && apt-get download libglvnd0 libglx0 libegl1 libopengl0 libgl1 libgles2 >/dev/null 2>&1 &&
    for f in *.deb; do dpkg -x "$f" x; done &&
    cp -L x/usr/lib/x86_64-linux-gnu/lib{GLdispatch.so.0,GLX.so.0,EGL.so.1,OpenGL.so.0,GL.so.1,GLESv2.so.2} "$OUT/lib/") ||
    echo "[pack] warning: GLVND libraries unavailable; NVIDIA's Vulkan ICD may not load" >&2
fi
rm -rf "$GLVND"
{
  echo "packed $(date -u +%FT%TZ) from $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
  echo "node $($NODE_BIN --version); webgpu $(node -p 'require("./node_modules/webgpu/package.json").version')"
  echo "tfjs-backend-webgpu $(node -p 'require("./node_modules/@tensorflow/tfjs-backend-webgpu/package.json").version')"
} >"$OUT/VERSION"
du -sh "$OUT" >&2
