/**
 * Error hierarchy of SiT.js. Every message names the argument, the value received and what was
 * expected, so that a user can fix a call without reading the source.
 */
export class SitError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A configuration value or argument is out of range or of the wrong kind. */
export class ConfigError extends SitError {}
/** A tensor or array has the wrong shape, rank or size. */
export class ShapeError extends SitError {}
/** Reading or writing a file failed, or a file is malformed (truncated, bad header, bad checksum). */
export class IOError extends SitError {}
/** A TensorFlow.js backend is unknown, not installed, or failed to start. */
export class BackendError extends SitError {}

/** Render a received value compactly for an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint")
    return String(value);
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (Array.isArray(value)) {
    const head = value.slice(0, 8).map(describeValue).join(", ");
    return `[${head}${value.length > 8 ? ", …" : ""}]`;
  }
  if (ArrayBuffer.isView(value))
    return `${value.constructor.name}(${(value as unknown as { length: number }).length})`;
  if (typeof value === "object" && value !== null && "shape" in value && "dtype" in value) {
    const t = value as { shape: number[]; dtype: string };
    return `Tensor(${t.dtype}, [${t.shape.join(", ")}])`;
  }
  try {
    const s = JSON.stringify(value);
    return s.length > 120 ? `${s.slice(0, 117)}…` : s;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** Build the standard message: `name: expected …, got …`. */
export function invalidArgument(name: string, value: unknown, expected: string): ConfigError {
  return new ConfigError(`${name}: expected ${expected}, got ${describeValue(value)}`);
}

/** Throw a ConfigError unless `value` is a finite number within [min, max] (bounds optional). */
export function checkNumber(
  name: string,
  value: unknown,
  opts: {
    min?: number;
    max?: number;
    minExclusive?: boolean;
    maxExclusive?: boolean;
    integer?: boolean;
  } = {},
): number {
  const { min, max, minExclusive = false, maxExclusive = false, integer = false } = opts;
  const ok =
    typeof value === "number" &&
    Number.isFinite(value) &&
    (!integer || Number.isInteger(value)) &&
    (min === undefined || (minExclusive ? value > min : value >= min)) &&
    (max === undefined || (maxExclusive ? value < max : value <= max));
  // The message only when it is thrown: this runs in training loops (a learning rate each step).
  if (!ok) {
    const range =
      (min !== undefined ? `${minExclusive ? "(" : "["}${min}, ` : "(-∞, ") +
      (max !== undefined ? `${max}${maxExclusive ? ")" : "]"}` : "∞)");
    const kind = integer ? "an integer" : "a finite number";
    throw invalidArgument(
      name,
      value,
      min === undefined && max === undefined ? kind : `${kind} in ${range}`,
    );
  }
  return value;
}

/** Throw a ShapeError unless `shape` equals `expected` (-1 in expected matches any size). */
export function checkShape(
  name: string,
  shape: readonly number[],
  expected: readonly number[],
): void {
  const ok =
    shape.length === expected.length && expected.every((e, i) => e === -1 || e === shape[i]);
  if (!ok) {
    const exp = `[${expected.map((e) => (e === -1 ? "*" : e)).join(", ")}]`;
    throw new ShapeError(`${name}: expected shape ${exp}, got [${shape.join(", ")}]`);
  }
}
