/**
 * L1 and L2 entries as the spec lays them out (64-bit big-endian words, read here as two 32-bit
 * halves so that no BigInt is needed on the hot path):
 * - L1: bits 9–55 the L2 table's offset, bit 63 "copied" (refcount is exactly 1).
 * - L2, standard: bit 0 "reads as zeros" (v3), bits 9–55 the data cluster, bit 63 "copied".
 * - L2, compressed (bit 62): the low x = 62 − (cluster_bits − 8) bits are the byte offset of
 *   the compressed data, the bits above it up to 61 the number of additional 512-byte sectors.
 */
import { Qcow2CorruptError } from './refcounts.js';

export const COPIED = 0x80000000;
export const COMPRESSED = 0x40000000;

export type Mapping =
  | { kind: 'unallocated' }
  /** Reads as zeros; `host` is kept when the cluster stays allocated (0 = plain zero). */
  | { kind: 'zero'; host: number; copied: boolean }
  | { kind: 'data'; host: number; copied: boolean }
  /** Compressed bytes at [start, end) of the file. */
  | { kind: 'compressed'; start: number; end: number };

const OFFSET_HI = 0x00ffffff;

export function readWord(t: Uint8Array, i: number): [number, number] {
  const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
  return [dv.getUint32(i * 8), dv.getUint32(i * 8 + 4)];
}

export function writeWord(t: Uint8Array, i: number, hi: number, lo: number): void {
  const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
  dv.setUint32(i * 8, hi >>> 0);
  dv.setUint32(i * 8 + 4, lo >>> 0);
}

/** An L1 entry's L2 table offset (0: none), checked for alignment. */
export function l1Offset(l1: Uint8Array, i: number, clusterSize: number): number {
  const [hi, lo] = readWord(l1, i);
  const off = (hi & OFFSET_HI) * 2 ** 32 + (lo & (~0x1ff >>> 0));
  if (off % clusterSize !== 0) {
    throw new Qcow2CorruptError(`L1 entry ${i} points at ${off}, which is not cluster aligned`);
  }
  return off;
}

export function setL1(l1: Uint8Array, i: number, off: number): void {
  writeWord(l1, i, (Math.floor(off / 2 ** 32) | COPIED) >>> 0, off % 2 ** 32);
}

export function decodeL2(t: Uint8Array, i: number, clusterBits: number, version: number): Mapping {
  const [hi, lo] = readWord(t, i);
  if (hi & COMPRESSED) {
    const v = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(lo);
    const x = BigInt(62 - (clusterBits - 8));
    const start = Number(v & ((1n << x) - 1n));
    const sectors = Number(v >> x);
    const end = Math.floor(start / 512) * 512 + (sectors + 1) * 512;
    return { kind: 'compressed', start, end };
  }
  const host = (hi & OFFSET_HI) * 2 ** 32 + ((lo & ~0x1ff) >>> 0);
  const copied = (hi & COPIED) !== 0;
  if (version >= 3 && lo & 1) return { kind: 'zero', host, copied };
  if (host === 0) return { kind: 'unallocated' };
  if (host % 2 ** clusterBits !== 0) {
    throw new Qcow2CorruptError(`L2 entry points at ${host}, which is not cluster aligned`);
  }
  return { kind: 'data', host, copied };
}

export function encodeL2(m: Mapping): [number, number] {
  switch (m.kind) {
    case 'unallocated':
      return [0, 0];
    case 'zero':
      return [
        (Math.floor(m.host / 2 ** 32) | (m.copied && m.host ? COPIED : 0)) >>> 0,
        (m.host % 2 ** 32) + 1,
      ];
    case 'data':
      return [(Math.floor(m.host / 2 ** 32) | (m.copied ? COPIED : 0)) >>> 0, m.host % 2 ** 32];
    case 'compressed':
      throw new Error('writing compressed entries is not implemented');
  }
}
