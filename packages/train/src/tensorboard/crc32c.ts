/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum that TensorFlow's record
 * format uses, and the "masked" form that TFRecord / tfevents files store.
 */

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C of `bytes` as an unsigned 32-bit integer (crc32c("123456789") = 0xE3069283). */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * The masked CRC that TFRecord files store: rotate right by 15 bits and add 0xa282ead8 (mod 2³²).
 * Masking keeps a CRC of data that itself contains CRCs from being degenerate.
 */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}
