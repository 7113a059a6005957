import { constants, gunzipSync, inflateSync } from "node:zlib";

/**
 * The first `want` inflated bytes of a gzip or zlib stream (or all of it, if shorter), inflating
 * only growing prefixes of `raw`: a prefix of n bytes inflates to at most ~1032·n, so reading a
 * header that declares the full size costs little even for a stream built to inflate to gigabytes.
 */
export function inflatedHead(raw: Uint8Array, want: number, format: "gzip" | "zlib"): Uint8Array {
  const inflate = format === "gzip" ? gunzipSync : inflateSync;
  for (let n = 256; ; n *= 8) {
    const head = inflate(raw.subarray(0, n), { finishFlush: constants.Z_SYNC_FLUSH });
    if (head.length >= want || n >= raw.length) return head;
  }
}
