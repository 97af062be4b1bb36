/**
 * Positioned scatter/gather I/O on a file handle, straight into and out of the caller's views
 * (guest RAM): loops until every byte moved, since the host may transfer less than asked.
 */
import type { FileHandle } from 'node:fs/promises';
import type { ReadNow } from './read-now.js';
import { totalLength } from './request-check.js';

/** The part of a FileHandle this needs (so tests can inject a fake). */
export type ScatterFile = Pick<FileHandle, 'read' | 'readv' | 'write' | 'writev'>;

/** The views left after `n` bytes of a scatter list were transferred (views, not copies). */
export function advance(bufs: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (n >= b.length) n -= b.length;
    else {
      out.push(n > 0 ? b.subarray(n) : b);
      n = 0;
    }
  }
  return out;
}

/**
 * Fills the views from `pos`. Bytes past the end of the file read as zeros (the file may have
 * shrunk under us, or a qcow2 cluster may lie past EOF): QEMU does the same.
 */
export async function readFully(
  fh: ScatterFile,
  pos: number,
  bufs: readonly Uint8Array[],
  now?: ReadNow,
): Promise<void> {
  let pending = bufs.filter((b) => b.length > 0);
  if (now && pending.length > 0) {
    // What the host's page cache holds is read here and now (read-now.ts); the rest goes on.
    let left = totalLength(pending);
    while (left > 0) {
      const n = now.tryRead(pos, pending, left);
      if (n < 0) break;
      if (n === 0) {
        for (const b of pending) b.fill(0);
        left = 0;
        break;
      }
      pos += n;
      left -= n;
      pending = advance(pending, n);
    }
    now.count(left === 0);
    if (left === 0) return;
  }
  while (pending.length > 0) {
    const { bytesRead } =
      pending.length === 1
        ? await fh.read(pending[0]!, 0, pending[0]!.length, pos)
        : await fh.readv(pending, pos);
    if (bytesRead === 0) {
      for (const b of pending) b.fill(0);
      return;
    }
    pos += bytesRead;
    pending = advance(pending, bytesRead);
  }
}

/** Writes the views at `pos`; returns the end position. A host that writes nothing is an error. */
export async function writeFully(
  fh: ScatterFile,
  pos: number,
  bufs: readonly Uint8Array[],
): Promise<number> {
  let pending = bufs.filter((b) => b.length > 0);
  while (pending.length > 0) {
    const { bytesWritten } =
      pending.length === 1
        ? await fh.write(pending[0]!, 0, pending[0]!.length, pos)
        : await fh.writev(pending, pos);
    if (bytesWritten === 0) throw new Error('the host wrote 0 bytes');
    pos += bytesWritten;
    pending = advance(pending, bytesWritten);
  }
  return pos;
}
