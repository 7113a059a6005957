import * as tf from "@tensorflow/tfjs";
import pkg from "../package.json";

/** Versions recorded in every checkpoint: this package, TensorFlow.js and the active backend. */
export function libraryVersions(): Record<string, string> {
  const out: Record<string, string> = { "@sit/train": pkg.version };
  for (const [k, v] of Object.entries(tf.version)) out[`@tensorflow/${k}`] = String(v);
  out.backend = tf.getBackend() ?? "none";
  return out;
}
