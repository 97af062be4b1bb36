/**
 * LUKS1's anti-forensic splitter: a key is stored as `stripes` blocks, all but the last random,
 * chained through a hash-based diffusion, so that destroying any part of the stored material
 * destroys the key. Merge is split's inverse: d = 0; for each of the first stripes−1 blocks,
 * d = diffuse(d ⊕ block); key = d ⊕ last block.
 *
 * diffuse(): the buffer cut into hash-sized pieces (the last may be shorter); piece i becomes
 * hash(i as 32-bit big-endian ‖ piece), truncated to the piece's length.
 */
import { createHash, randomFillSync } from 'node:crypto';
import type { LuksHash } from './header.js';

const DIGEST_LEN: Record<LuksHash, number> = { sha1: 20, sha256: 32, sha512: 64 };

function diffuse(buf: Uint8Array, hash: LuksHash): void {
  const dl = DIGEST_LEN[hash];
  const index = new Uint8Array(4);
  for (let i = 0, at = 0; at < buf.length; i++, at += dl) {
    const piece = buf.subarray(at, Math.min(at + dl, buf.length));
    new DataView(index.buffer).setUint32(0, i);
    const d = createHash(hash).update(index).update(piece).digest();
    piece.set(d.subarray(0, piece.length));
  }
}

function xorInto(dst: Uint8Array, src: Uint8Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] ^= src[i];
}

/** Splits `key` into key.length × stripes bytes of material. */
export function afSplit(
  key: Uint8Array,
  stripes: number,
  hash: LuksHash,
  random: (b: Uint8Array) => void = (b) => randomFillSync(b),
): Uint8Array {
  const n = key.length;
  const out = new Uint8Array(n * stripes);
  const d = new Uint8Array(n);
  for (let s = 0; s < stripes - 1; s++) {
    const block = out.subarray(s * n, (s + 1) * n);
    random(block);
    xorInto(d, block);
    diffuse(d, hash);
  }
  const last = out.subarray((stripes - 1) * n);
  last.set(d);
  xorInto(last, key);
  return out;
}

/** Recovers the key of `keyBytes` bytes from its split material. */
export function afMerge(
  material: Uint8Array,
  keyBytes: number,
  stripes: number,
  hash: LuksHash,
): Uint8Array {
  if (material.length < keyBytes * stripes) {
    throw new RangeError(
      `AF material of ${material.length} bytes is short of ${keyBytes} × ${stripes}`,
    );
  }
  const d = new Uint8Array(keyBytes);
  for (let s = 0; s < stripes - 1; s++) {
    xorInto(d, material.subarray(s * keyBytes, (s + 1) * keyBytes));
    diffuse(d, hash);
  }
  xorInto(d, material.subarray((stripes - 1) * keyBytes, stripes * keyBytes));
  return d;
}
