/**
 * What the split and packed ring fuzz runs share (ring.test.ts, ring-packed.test.ts): a seeded
 * PRNG, the addresses and lengths a hostile driver writes into descriptors, and the checks every
 * chain the ring processor hands out must pass.
 */
import type { DescriptorChain } from '../../../devices/virtio/ring.js';
import { RAM_BASE, RAM_SIZE } from './driver.js';

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Fuzz {
  rand(): number;
  /** 0..n-1 */
  int(n: number): number;
  /** A buffer address: anywhere in RAM, at its very end, below it, an indirect table, data. */
  addr(): number;
  /** A length: 0, nearly 4 GiB, an indirect table's size or not, an ordinary buffer. */
  len(): number;
}

/** `tables`: where the fuzz keeps indirect tables; `max`: the largest queue it sets up. */
export function ringFuzz(seed: number, o: { tables: number; max: number }): Fuzz {
  const rand = prng(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  return {
    rand,
    int,
    addr: () => {
      switch (int(6)) {
        case 0:
          return RAM_BASE + int(RAM_SIZE);
        case 1:
          return RAM_BASE + RAM_SIZE - int(64);
        case 2:
          return int(2 ** 32);
        case 3:
          return o.tables + 16 * int(64);
        default:
          return RAM_BASE + 0x40_0000 + int(0x10000);
      }
    },
    len: () => {
      switch (int(6)) {
        case 0:
          return 0;
        case 1:
          return 0xffff_ffff - int(16);
        case 2:
          return 16 * int(o.max + 2);
        default:
          return 1 + int(4096);
      }
    },
  };
}

/**
 * Throws unless the chain is one a device may use: 1..queueSize segments, each non-empty and
 * inside RAM, device-readable ones first. (Plain checks: expect() per segment would dominate
 * the run time.)
 */
export function checkChain(c: DescriptorChain, queueSize: number): void {
  const n = c.segments.length;
  if (n === 0 || n > queueSize)
    throw new Error(`chain of ${n} segments in a queue of ${queueSize}`);
  let seenW = false;
  for (const s of c.segments) {
    const len = s.view.length;
    if (len === 0 || s.addr < RAM_BASE || s.addr + len > RAM_BASE + RAM_SIZE) {
      throw new Error(`bad segment ${s.addr.toString(16)}+${len}`);
    }
    if (s.writable) seenW = true;
    else if (seenW) throw new Error('readable segment after a writable one');
  }
}
