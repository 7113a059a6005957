// Public API of @sit/core/node: what only Node can do. Files (written atomically), safetensors and
// checkpoints on disk, PNG encoding, and Node's backend start-up (tfjs-node, WebGPU through Dawn,
// wasm binaries from node_modules and wasm threads). Everything else is @sit/core's, which these
// functions build on: the bytes they write are the ones a web page makes with the main entry.

export { initBackend } from "./backend-node";
export { removeStaleTempFiles, writeFileAtomic } from "./io/atomic";
export { encodePng } from "./io/png";
export { readSafetensors, loadSafetensors, writeSafetensors } from "./io/safetensors-files";
export { saveCheckpoint, loadCheckpoint } from "./io/checkpoint-files";
