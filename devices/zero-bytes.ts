/**
 * A fast all-zero test, shared by the `img` tools (holes and zero clusters) and the saved-VM RAM
 * image (zero pages are left out): a native memcmp against a block of zeros, no copies.
 */
const ZEROS = Buffer.alloc(2 << 20);

/** Whether bytes [start, end) of `b` are all zero (one memcmp per 2 MiB). */
export function isZero(b: Uint8Array, start = 0, end = b.length): boolean {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (let p = start; p < end; p += ZEROS.length) {
    const n = Math.min(ZEROS.length, end - p);
    if (ZEROS.compare(buf, p, p + n, 0, n) !== 0) return false;
  }
  return true;
}
