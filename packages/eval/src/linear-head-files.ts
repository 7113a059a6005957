import { IOError, type Rng, ShapeError } from "@sit/core";
import { loadSafetensors, writeSafetensors } from "@sit/core/node";
import { LinearHead } from "@sit/eval";
import * as tf from "@tensorflow/tfjs";

// Node only (@sit/eval/node): a linear head saved to and loaded from a safetensors file.

/** Save a head (weights and BatchNorm statistics) as safetensors, atomically, with its sizes in the metadata. */
export function saveLinearHead(path: string, head: LinearHead): void {
  writeSafetensors(path, head.stateDict(), {
    format: "sit-linear-head",
    inFeatures: String(head.inFeatures),
    numClasses: String(head.numClasses),
    batchNorm: String(head.bn !== null),
  });
}

/**
 * Load a head written by {@link saveLinearHead}. With `expectedInFeatures` (the backbone's feature
 * size), a head trained on another feature size is refused with a ShapeError naming both sizes.
 */
export function loadLinearHead(
  path: string,
  options: { rng: Rng; expectedInFeatures?: number },
): LinearHead {
  const { tensors, metadata } = loadSafetensors(path);
  try {
    if (metadata.format !== "sit-linear-head")
      throw new IOError(
        `${path}: expected a linear head written by saveLinearHead, got format ${JSON.stringify(metadata.format)}`,
      );
    const inFeatures = Number(metadata.inFeatures);
    const numClasses = Number(metadata.numClasses);
    if (options.expectedInFeatures !== undefined && options.expectedInFeatures !== inFeatures)
      throw new ShapeError(
        `${path}: the head expects ${inFeatures}-dimensional features, but the backbone gives ${options.expectedInFeatures}`,
      );
    const head = new LinearHead(inFeatures, numClasses, {
      rng: options.rng,
      batchNorm: metadata.batchNorm === "true",
    });
    head.loadStateDict(tensors);
    return head;
  } finally {
    tf.dispose(Object.values(tensors));
  }
}
