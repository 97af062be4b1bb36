/**
 * What the long `img` operations (convert, commit, rebase, compare) share: the ranges of an image
 * that need work (block status rules out runs that surely read as zeros, or that a layer does
 * not hold), walked in large chunks with a few in flight at once (reads of one overlap the writes
 * of another), with progress.
 */
import type { BlockBackend } from '../../devices/block/backend.js';
import { blockStatus, type Extent } from '../../devices/block/qcow2/block-status.js';
import { Qcow2Image } from '../../devices/block/qcow2/index.js';

/** Chunk size of the walks: large sequential I/O. */
export const CHUNK = 4 << 20;
/** Chunks in flight. */
export const PARALLEL = 4;

/** Half-open byte ranges [start, end), sorted and disjoint. */
export type Ranges = [number, number][];

/**
 * The ranges of [0, img.size) holding extents `keep` accepts (every byte of a format without
 * block status); `descend` false asks the top layer only.
 */
export async function rangesWhere(
  img: BlockBackend,
  keep: (e: Extent) => boolean,
  descend = true,
): Promise<Ranges> {
  if (!(img instanceof Qcow2Image)) return img.size > 0 ? [[0, img.size]] : [];
  const out: Ranges = [];
  for (const e of await blockStatus(img, 0, img.size, { descend })) {
    if (keep(e)) out.push([e.start, e.start + e.length]);
  }
  return union(out);
}

/** Sorted, merged union of ranges (touching ones joined). */
export function union(...lists: Ranges[]): Ranges {
  const all = lists.flat().sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  for (const [s, e] of all) {
    const l = out[out.length - 1];
    if (l && s <= l[1]) l[1] = Math.max(l[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * Calls `fn` for each piece of at most `chunk` bytes of `ranges` (each range first widened to
 * multiples of `align`, clipped at `size`), `PARALLEL` at a time, in increasing order of start;
 * stops taking new pieces after a failure (or when `fn` returns 'stop') and rethrows the first
 * failure once the others are done. Progress counts the bytes of the pieces done.
 */
export async function forEachChunk(
  ranges: Ranges,
  size: number,
  fn: (offset: number, length: number) => Promise<void | 'stop'>,
  opts: { progress?: { report(done: number, total: number): void }; align?: number } = {},
): Promise<void> {
  const align = opts.align ?? 512;
  const chunk = Math.ceil(CHUNK / align) * align;
  const work = union(
    ranges.map(([s, e]) => [
      Math.floor(s / align) * align,
      Math.min(size, Math.ceil(e / align) * align),
    ]),
  );
  const total = work.reduce((n, [s, e]) => n + e - s, 0);
  let ri = 0;
  let next = work[0]?.[0] ?? 0;
  let done = 0;
  let stop = false;
  let failure: { e: unknown } | undefined;
  const take = (): [number, number] | undefined => {
    while (ri < work.length && next >= work[ri][1]) {
      ri++;
      next = work[ri]?.[0] ?? 0;
    }
    if (ri >= work.length) return undefined;
    const len = Math.min(chunk, work[ri][1] - next);
    const piece: [number, number] = [next, len];
    next += len;
    return piece;
  };
  const worker = async () => {
    for (let p = take(); p && !stop; p = take()) {
      try {
        if ((await fn(p[0], p[1])) === 'stop') stop = true;
      } catch (e) {
        failure ??= { e };
        stop = true;
      }
      done += p[1];
      opts.progress?.report(done, total);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  if (failure) throw failure.e;
}

/**
 * Chunk buffers kept for reuse: a walk allocates PARALLEL of them instead of one per chunk (a
 * 4 MiB allocation each time costs a garbage collection every few chunks). `use` lends a
 * buffer of `len` ≤ CHUNK bytes (contents undefined) for the duration of `fn`.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  async use<T>(len: number, fn: (buf: Buffer) => Promise<T>): Promise<T> {
    const whole = len <= CHUNK ? (this.free.pop() ?? Buffer.allocUnsafeSlow(CHUNK)) : undefined;
    try {
      return await fn(whole ? whole.subarray(0, len) : Buffer.allocUnsafeSlow(len));
    } finally {
      if (whole) this.free.push(whole);
    }
  }
}
