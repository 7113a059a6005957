import {
  registerFlatAdamWKernel,
  registerFlatEmaKernel,
  registerPixelSourcesKernel,
} from "@sit/core";
import { registerFlatAdamWTfjsKernel, webgpuFlatAdamW } from "./adamw";
import { registerFlatEmaTfjsKernel, webgpuFlatEma } from "./ema";
import { registerPixelSourcesTfjsKernel, webgpuPixelSources } from "./gmml";

let removeAll: (() => void) | null = null;

/**
 * Plug (`true`, the state after importing this package) or unplug (`false`) the WebGPU flat-buffer
 * AdamW and EMA and the GMML pixel-source application into @sit/core's `AdamW` (device mode),
 * @sit/momentum's `EmaTeacher` and @sit/gmml's `applyPixelSources` through
 * `registerFlatAdamWKernel` / `registerFlatEmaKernel` / `registerPixelSourcesKernel`. Unplugged,
 * the webgpu backend runs their portable tfjs-op paths — for comparisons and benchmarks.
 * Idempotent. An AdamW notices the change at its next step and moves its moments between the two
 * storages.
 */
export function setWebgpuFlatKernels(enabled: boolean): void {
  if (enabled && !removeAll) {
    registerFlatAdamWTfjsKernel();
    registerFlatEmaTfjsKernel();
    registerPixelSourcesTfjsKernel();
    const removers = [
      registerFlatAdamWKernel("webgpu", webgpuFlatAdamW),
      registerFlatEmaKernel("webgpu", webgpuFlatEma),
      registerPixelSourcesKernel("webgpu", webgpuPixelSources),
    ];
    removeAll = () => {
      for (const r of removers) r();
    };
  } else if (!enabled && removeAll) {
    removeAll();
    removeAll = null;
  }
}

// On by default: importing the package plugs the flat kernels in.
setWebgpuFlatKernels(true);
