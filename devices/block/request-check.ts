/**
 * Validation every block request passes before it reaches a file: the guest chooses offsets and
 * lengths, so anything negative, fractional, unaligned or past the end is refused here with a
 * BlockError — never a crash, never a host read or write outside the disk.
 */
import { BlockError } from './backend.js';

export const SECTOR_SIZE = 512;

const isSectorMultiple = (n: number): boolean =>
  Number.isSafeInteger(n) && n >= 0 && n % SECTOR_SIZE === 0;

/** Throws BlockError('out-of-range') unless [offset, offset+length) is a sector-aligned range of the disk. */
export function checkRange(
  disk: { readonly name: string; readonly size: number },
  what: string,
  offset: number,
  length: number,
): void {
  if (!isSectorMultiple(offset) || !isSectorMultiple(length)) {
    throw new BlockError(
      'out-of-range',
      `${disk.name}: ${what} at ${offset} (+${length}): offset and length must be non-negative multiples of ${SECTOR_SIZE}`,
    );
  }
  if (offset > disk.size || length > disk.size - offset) {
    throw new BlockError(
      'out-of-range',
      `${disk.name}: ${what} at ${offset} (+${length}) ends past the disk's ${disk.size} bytes`,
    );
  }
}

/** Total byte length of a scatter list, validated like a single buffer. */
export function totalLength(bufs: readonly Uint8Array[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}
