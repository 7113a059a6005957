import * as tf from "@tensorflow/tfjs";

/**
 * The parts of a tfjs-backend-webgpu program that its `runWebGPUProgram` reads (see the backend's
 * `webgpu_program.js`): the backend generates the bindings (`result` = the output, one read-only
 * array per `variableNames` entry), a `uniforms` struct with every shape and stride plus the
 * program's own `uniforms` fields, and calls `main(index)` from an entry point of
 * `workgroupSize` threads. Declared here so that this package does not import the webgpu backend.
 */
export interface WebGpuProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  variableNames: string[];
  uniforms?: string;
  getUserCode(): string;
}

/** A program-defined uniform value, in the order of the program's `uniforms` fields. */
export interface UniformValue {
  type: "int32" | "float32";
  data: number[];
}

/** The methods of tfjs's `WebGPUBackend` that the kernels here use. */
export interface WebGpuBackendLike {
  runWebGPUProgram(
    program: WebGpuProgram,
    inputs: tf.TensorInfo[],
    dtype: "float32",
    uniforms?: UniformValue[],
    output?: tf.TensorInfo,
  ): tf.TensorInfo;
  disposeData(dataId: object): boolean;
}

/** What `tf.registerKernel`'s kernel function receives, typed for our kernels. */
export interface KernelArgs {
  inputs: Record<string, tf.TensorInfo>;
  backend: WebGpuBackendLike;
  attrs: Record<string, unknown>;
}

/**
 * The flat index of this thread's workgroup. tfjs's backend folds a dispatch with more than 65,535
 * workgroups into a square (or cube), so kernels must not read `workgroupId.x` alone; the extra
 * workgroups of a folded dispatch get an index ≥ the requested count and must write nothing.
 * (Values read through this function are not "uniform" for WGSL's analysis: barriers must never
 * sit under a branch on them — kernels guard loads and stores with a `valid` flag instead.)
 */
export const GROUP_INDEX_WGSL = `
  fn sitGroup() -> i32 {
    return i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y +
      workgroupId.y * numWorkgroups.x + workgroupId.x);
  }
`;

/** Build a program whose dispatch is `groups` workgroups of `threads` threads (flat x). */
export function makeProgram(spec: {
  key: string;
  outputShape: number[];
  groups: number;
  threads: number;
  variableNames: string[];
  uniforms?: string;
  code: string;
}): WebGpuProgram {
  return {
    outputShape: spec.outputShape,
    shaderKey: spec.key,
    dispatchLayout: { x: spec.outputShape.map((_, i) => i) },
    dispatch: [Math.max(1, spec.groups), 1, 1],
    workgroupSize: [spec.threads, 1, 1],
    variableNames: spec.variableNames,
    uniforms: spec.uniforms,
    getUserCode: () => `${GROUP_INDEX_WGSL}\n${spec.code}`,
  };
}

/** `KernelArgs` from tfjs's untyped kernel-function argument. */
export function kernelArgs(args: unknown): KernelArgs {
  return args as KernelArgs;
}

/**
 * Register kernels on the webgpu backend, each as [kernel name, kernel function]. The functions
 * take their arguments through {@link kernelArgs}, so their own signatures are narrower than
 * tfjs's `KernelFunc`.
 */
export function registerWebgpuKernels(
  kernels: ReadonlyArray<readonly [string, (args: never) => unknown]>,
): void {
  for (const [kernelName, kernelFunc] of kernels)
    tf.registerKernel({
      kernelName,
      backendName: "webgpu",
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    });
}
