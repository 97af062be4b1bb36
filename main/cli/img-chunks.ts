/**
 * What the long `img` operations (convert, commit, rebase, compare) share: walking an image in
 * large chunks with a few in flight at once (reads of one overlap the writes of another), with
 * progress, and a fast all-zero test.
 */
/** Chunk size of the walks: large sequential I/O. */
export const CHUNK = 4 << 20;
/** Chunks in flight. */
export const PARALLEL = 4;

/**
 * Calls `fn` for each `chunk`-sized piece of [0, total) (`chunk` rounded up to a multiple of
 * `align`), `PARALLEL` at a time, in increasing order of start; stops taking new pieces after a
 * failure (or when `fn` returns 'stop') and rethrows the first failure once the others are done.
 */
export async function forEachChunk(
  total: number,
  fn: (offset: number, length: number) => Promise<void | 'stop'>,
  opts: { progress?: { report(done: number): void }; align?: number; chunk?: number } = {},
): Promise<void> {
  const align = opts.align ?? 512;
  const chunk = Math.ceil((opts.chunk ?? CHUNK) / align) * align;
  let next = 0;
  let done = 0;
  let stop = false;
  let failure: { e: unknown } | undefined;
  const worker = async () => {
    while (!stop && next < total) {
      const off = next;
      const len = Math.min(chunk, total - off);
      next += len;
      try {
        if ((await fn(off, len)) === 'stop') stop = true;
      } catch (e) {
        failure ??= { e };
        stop = true;
      }
      done += len;
      opts.progress?.report(done);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  if (failure) throw failure.e;
}

const ZEROS = new Uint8Array(2 << 20);

/** Whether every byte of `b` is zero (a native memcmp per 2 MiB). */
export function isZero(b: Uint8Array): boolean {
  for (let p = 0; p < b.length; p += ZEROS.length) {
    const n = Math.min(ZEROS.length, b.length - p);
    if (Buffer.compare(b.subarray(p, p + n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}
