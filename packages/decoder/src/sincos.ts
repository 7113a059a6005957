import { ConfigError } from "@sit/core";

/**
 * MAE's fixed 2-D sin-cos position embedding for a `rows × cols` grid, `[(1 +) rows·cols, D]`
 * row-major (a zero row first when `clsToken`). As MAE's `get_2d_sincos_pos_embed`, the first
 * D/2 channels encode the column index and the last D/2 the row index, each as
 * `[sin(pos·ω_k), cos(pos·ω_k)]` with `ω_k = 10000^(−k/(D/4))`. D must be a multiple of 4.
 */
export function sincosPosEmbed2d(
  dim: number,
  rows: number,
  cols: number,
  clsToken: boolean,
): Float32Array {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 4 !== 0)
    throw new ConfigError(
      `embedDim: expected a positive multiple of 4 (2-D sin-cos position embedding), got ${dim}`,
    );
  const quarter = dim / 4;
  const offset = clsToken ? 1 : 0;
  const out = new Float32Array((offset + rows * cols) * dim);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const base = (offset + r * cols + c) * dim;
      for (let k = 0; k < quarter; k++) {
        const omega = 1 / 10000 ** (k / quarter);
        out[base + k] = Math.sin(c * omega);
        out[base + quarter + k] = Math.cos(c * omega);
        out[base + 2 * quarter + k] = Math.sin(r * omega);
        out[base + 3 * quarter + k] = Math.cos(r * omega);
      }
    }
  return out;
}
