/**
 * The few protobuf encodings a TensorBoard `Event` needs (proto3 wire format): varints,
 * 64-bit doubles, 32-bit floats and length-delimited fields. Just enough for scalars; no decoder.
 */

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

/** Accumulates the bytes of one protobuf message. */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** A raw unsigned varint (non-negative safe integer). */
  private varint(value: number): void {
    const out: number[] = [];
    // Division rather than bit shifts: values may exceed 32 bits (steps, lengths).
    let v = value;
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    this.push(Uint8Array.from(out));
  }

  /** An int64/uint64 field holding a non-negative safe integer. */
  uint64(field: number, value: number): this {
    this.key(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  /** A `double` field (little-endian IEEE 754, 8 bytes). */
  double(field: number, value: number): this {
    this.key(field, WIRE_FIXED64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    this.push(b);
    return this;
  }

  /** A `float` field (little-endian IEEE 754, 4 bytes). */
  float(field: number, value: number): this {
    this.key(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  /** A `bytes` or embedded-message field. */
  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_LENGTH);
    this.varint(value.length);
    this.push(value);
    return this;
  }

  /** A `string` field (UTF-8). */
  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** The encoded message. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}
