// Kernel input names that carry an index (`t3`, `g17`, `b4.fc1W`): a fused kernel over a whole
// network names ≈ 170–330 inputs, on every call, every step. A template literal builds (and V8
// hashes, to look it up as a property key) a new string each time; the same string object, kept
// here, is hashed once. On a SiT step the names were among the larger sources of the garbage its
// host part made (tools/bench/results/lavapipe-2026-12-05-garbage/).

const byPrefix = new Map<string, string[]>();
const bySuffix = new Map<string, string[]>();

/** The names made so far for `key` in `rows`, by index. */
function rowOf(rows: Map<string, string[]>, key: string): string[] {
  let row = rows.get(key);
  if (!row) {
    row = [];
    rows.set(key, row);
  }
  return row;
}

/** `${prefix}${i}`, the same string object at every call. */
export function indexedName(prefix: string, i: number): string {
  const row = rowOf(byPrefix, prefix);
  row[i] ??= `${prefix}${i}`;
  return row[i];
}

/** `b${i}.${name}`: block `i`'s input `name` in a block stack's kernels, one string object each. */
export function blockInputName(i: number, name: string): string {
  const row = rowOf(bySuffix, name);
  row[i] ??= `b${i}.${name}`;
  return row[i];
}
