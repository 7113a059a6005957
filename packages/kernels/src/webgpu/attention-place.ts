// Where a workgroup of the fused attention passes (attention-general.ts, attention-vec4.ts) works.

/** Query (or key) rows per workgroup: one thread each (two per key row in the vec4 dK/dV pass). */
export const ATTENTION_ROWS = 32;

/**
 * The workgroup's (batch, head, tile of ROWS rows) and the thread's row (thread t and t + ROWS
 * share one where a pass runs two threads per row), for both families of passes.
 */
export const PLACE_WGSL = `struct Place { b : i32, head : i32, row : i32, valid : bool, rowOk : bool }
  fn place() -> Place {
    let n = uniforms.qKVShape[1];
    let tiles = (n + ROWS - 1) / ROWS;
    let g = sitGroup();
    let head = (g / tiles) % uniforms.numHeads;
    let b = g / (tiles * uniforms.numHeads);
    let row = (g % tiles) * ROWS + i32(localId.x) % ROWS;
    let valid = b < uniforms.qKVShape[0];
    return Place(b, head, row, valid, valid && row < n);
  }`;
