import { describe, expect, it } from 'vitest';
import { fold, internetChecksum, onesSum } from '../../../devices/net/offload.js';

/** RFC 1071's definition, byte pair by byte pair: what the word-at-a-time sum must equal. */
function reference(d: Uint8Array, start: number, end: number, seed: number): number {
  let s = seed;
  for (let i = start; i < end; i += 2) s += (d[i] << 8) | (i + 1 < end ? d[i + 1] : 0);
  return fold(s);
}

describe('one’s-complement sum', () => {
  // A view that starts at an odd offset of its buffer, so no word read is aligned.
  const backing = new Uint8Array(70_003);
  let x = 0x9e3779b9;
  for (let i = 0; i < backing.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    backing[i] = x & 0xff;
  }
  const data = backing.subarray(3);

  it('equals the byte-pair definition at every start parity, length and seed', () => {
    const lengths = [0, 1, 2, 7, 63, 64, 65, 66, 71, 72, 1499, 1500, 9017, 65_535, 65_536];
    for (const start of [0, 1, 2, 3, 5, 14]) {
      for (const len of lengths) {
        for (const seed of [0, 0xffff, 0x1_2345]) {
          expect(fold(onesSum(data, start, start + len, seed)), `${start}+${len}`).toBe(
            reference(data, start, start + len, seed),
          );
        }
      }
    }
  });

  it('handles the all-ones words whose carries wrap (checksum of a packet with its checksum is 0)', () => {
    const p = new Uint8Array(4096).fill(0xff);
    expect(fold(onesSum(p, 0, p.length))).toBe(0xffff);
    const q = data.slice(100, 100 + 1500);
    q[10] = 0;
    q[11] = 0;
    const c = internetChecksum(q, 0, q.length);
    q[10] = c >> 8;
    q[11] = c & 0xff;
    expect(internetChecksum(q, 0, q.length)).toBe(0);
  });
});
