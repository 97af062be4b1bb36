/**
 * The two readers of block-sched's competing-disks runs, usable in one thread or each in its own
 * worker thread (block-sched-thread.ts): a sequential flood and a one-at-a-time random reader.
 */
import type { Disk } from '../devices/block/index.js';

export const K4 = 4096;
/** Reads outstanding on the flooding disk. */
export const FLOOD_WINDOW = 32;

type Reader = Pick<Disk, 'size' | 'read'>;

export function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Buffers as guest RAM would be: views of a WebAssembly.Memory, page aligned. */
export function guestPages(n: number): (i: number) => Uint8Array {
  const ram = new WebAssembly.Memory({ initial: Math.ceil(((n + 1) * K4) / 65536) });
  return (i) => new Uint8Array(ram.buffer, (i + 1) * K4, K4);
}

/** Sequential 4 KiB reads, FLOOD_WINDOW outstanding, until `deadline`: bytes read. */
export async function floodReads(disk: Reader, deadline: number): Promise<number> {
  const page = guestPages(FLOOD_WINDOW);
  const bufs = Array.from({ length: FLOOD_WINDOW }, (_, j) => page(j));
  const blocks = disk.size / K4;
  let bytes = 0;
  for (let next = 0; performance.now() < deadline; next += FLOOD_WINDOW) {
    if (next + FLOOD_WINDOW > blocks) next = 0;
    const first = next;
    await Promise.all(bufs.map((b, j) => disk.read((first + j) * K4, b)));
    bytes += FLOOD_WINDOW * K4;
  }
  return bytes;
}

/** Random 4 KiB reads one at a time until `deadline`: reads done. */
export async function randomReads(disk: Reader, deadline: number, seed: number): Promise<number> {
  const rnd = xorshift(seed);
  const b = guestPages(1)(0);
  const blocks = disk.size / K4;
  let ops = 0;
  while (performance.now() < deadline) {
    await disk.read(Math.floor(rnd() * blocks) * K4, b);
    ops++;
  }
  return ops;
}
