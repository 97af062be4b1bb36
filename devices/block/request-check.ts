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

/**
 * The checks every format runs before touching its file: not closed, not a write to a read-only
 * disk, and a valid range.
 */
export function admitRequest(
  disk: { readonly name: string; readonly size: number; readonly readOnly: boolean },
  closed: boolean,
  what: string,
  offset: number,
  length: number,
  writes: boolean,
): void {
  if (closed) throw new BlockError('io', `${disk.name}: ${what} after close`);
  if (writes && disk.readOnly) {
    throw new BlockError('read-only', `${disk.name}: ${what} refused: the disk is read-only`);
  }
  checkRange(disk, what, offset, length);
}

/** A host failure during a request, as the BlockError the layers above expect (naming the file). */
export function hostIoError(
  name: string,
  what: string,
  offset: number,
  length: number,
  e: unknown,
  detailPrefix = '',
): BlockError {
  if (e instanceof BlockError) return e;
  const err = e as NodeJS.ErrnoException;
  return new BlockError(
    'io',
    `${name}: ${what} at ${offset} (+${length}): ${detailPrefix}${err.code ?? err.message}`,
  );
}
