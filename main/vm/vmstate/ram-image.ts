/**
 * Guest RAM in a saved-VM file: only the pages that are not all zeros, as runs of up to
 * RUN_PAGES pages, each run deflated on its own (so a reader never inflates more than one run
 * at a time, and a bad run is found by its place). A freshly booted 256 MiB guest is mostly
 * zeros, and what is not compresses about 3:1.
 *
 *   u64 RAM bytes, u32 page size (4096), u32 runs
 *   run (repeated, ascending, not overlapping): u32 first page, u32 pages, u32 deflated length,
 *     deflated bytes (raw deflate)
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { isZero } from '../../../devices/zero-bytes.js';

export const RAM_IMAGE_VERSION = 1;
const PAGE = 4096;
const RUN_PAGES = 256;

/** A memcmp against zeros (devices/zero-bytes.ts): about 10x faster than a word loop in JS. */
function pageIsZero(ram: Buffer, page: number): boolean {
  return isZero(ram, page * PAGE, (page + 1) * PAGE);
}

function bufferOf(ram: Uint8Array): Buffer {
  return Buffer.from(ram.buffer, ram.byteOffset, ram.byteLength);
}

export function encodeRam(ram: Uint8Array): Uint8Array {
  const pages = ram.length / PAGE;
  const mem = bufferOf(ram);
  const parts: Uint8Array[] = [];
  let runs = 0;
  for (let p = 0; p < pages;) {
    if (pageIsZero(mem, p)) {
      p++;
      continue;
    }
    let end = p + 1;
    while (end < pages && end - p < RUN_PAGES && !pageIsZero(mem, end)) end++;
    const packed = deflateRawSync(ram.subarray(p * PAGE, end * PAGE), { level: 1 });
    const head = new DataView(new ArrayBuffer(12));
    head.setUint32(0, p, true);
    head.setUint32(4, end - p, true);
    head.setUint32(8, packed.length, true);
    parts.push(new Uint8Array(head.buffer), packed);
    runs++;
    p = end;
  }
  const header = new DataView(new ArrayBuffer(16));
  header.setBigUint64(0, BigInt(ram.length), true);
  header.setUint32(8, PAGE, true);
  header.setUint32(12, runs, true);
  return Buffer.concat([new Uint8Array(header.buffer), ...parts]);
}

/**
 * Writes a saved RAM image into `ram`; pages the image does not hold become zeros. Returns
 * undefined, or what is wrong with the image (then `ram` may be partly written: the caller
 * discards the machine).
 */
export function decodeRam(data: Uint8Array, ram: Uint8Array): string | undefined {
  if (data.length < 16) return 'truncated header';
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const size = v.getBigUint64(0, true);
  if (size !== BigInt(ram.length)) {
    return `saved with ${size / 1048576n} MiB of RAM, this VM has ${ram.length / 1048576} MiB`;
  }
  if (v.getUint32(8, true) !== PAGE) return `page size ${v.getUint32(8, true)}`;
  const runs = v.getUint32(12, true);
  const pages = ram.length / PAGE;
  const mem = bufferOf(ram);
  let o = 16;
  let next = 0;
  const zeroUpTo = (end: number): void => {
    // Reading a page the guest never touched costs no memory; writing it would.
    for (; next < end; next++)
      if (!pageIsZero(mem, next)) ram.fill(0, next * PAGE, (next + 1) * PAGE);
  };
  for (let r = 0; r < runs; r++) {
    if (data.length - o < 12) return `run ${r + 1} of ${runs}: truncated`;
    const first = v.getUint32(o, true);
    const count = v.getUint32(o + 4, true);
    const len = v.getUint32(o + 8, true);
    o += 12;
    if (count < 1 || count > RUN_PAGES || first < next || first + count > pages) {
      return `run ${r + 1} of ${runs}: pages ${first}+${count} out of order or outside RAM`;
    }
    if (len > data.length - o) return `run ${r + 1} of ${runs}: length ${len} runs past the end`;
    let plain: Buffer;
    try {
      plain = inflateRawSync(data.subarray(o, o + len), { maxOutputLength: count * PAGE });
    } catch (e) {
      return `run ${r + 1} of ${runs}: ${(e as Error).message}`;
    }
    if (plain.length !== count * PAGE) {
      return `run ${r + 1} of ${runs}: ${plain.length} bytes where ${count * PAGE} were expected`;
    }
    zeroUpTo(first);
    ram.set(plain, first * PAGE);
    next = first + count;
    o += len;
  }
  if (o !== data.length) return `${data.length - o} bytes after the last run`;
  zeroUpTo(pages);
  return undefined;
}
