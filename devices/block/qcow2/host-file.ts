/**
 * The host file under a qcow2 image. Unlike RawFile (whose size is the guest's disk and fixed),
 * an image file grows as clusters are allocated, and the format layer itself decides where each
 * byte goes, so this is a thin positioned-I/O wrapper: readv/writev straight between the file
 * and the caller's views (guest RAM for data clusters: no copy), and the cache mode's meaning of
 * a sync (`unsafe` skips them; `writethrough` syncs after each data write, via the caller).
 */
import { constants, open, type FileHandle } from 'node:fs/promises';
import type { CacheMode } from '../../../main/vm/config.js';

export class HostFile {
  syncs = 0;
  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    public size: number,
    readonly readOnly: boolean,
    public cache: CacheMode,
  ) {}

  static async open(path: string, readOnly: boolean, cache: CacheMode): Promise<HostFile> {
    const fh = await open(path, readOnly ? constants.O_RDONLY : constants.O_RDWR);
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new Error('is a directory, not a disk image');
      if (!st.isFile()) throw new Error('is not a regular file');
      return new HostFile(fh, path, st.size, readOnly, cache);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  /** Reads exactly the views' total length at `pos`; bytes past the end of the file read as 0. */
  async readv(pos: number, bufs: readonly Uint8Array[]): Promise<void> {
    let pending = bufs.filter((b) => b.length > 0);
    while (pending.length > 0) {
      const { bytesRead } =
        pending.length === 1
          ? await this.fh.read(pending[0], 0, pending[0].length, pos)
          : await this.fh.readv(pending, pos);
      if (bytesRead === 0) {
        for (const b of pending) b.fill(0);
        return;
      }
      pos += bytesRead;
      pending = advance(pending, bytesRead);
    }
  }

  async read(pos: number, len: number): Promise<Uint8Array> {
    const b = new Uint8Array(len);
    await this.readv(pos, [b]);
    return b;
  }

  async writev(pos: number, bufs: readonly Uint8Array[]): Promise<void> {
    let pending = bufs.filter((b) => b.length > 0);
    while (pending.length > 0) {
      const { bytesWritten } =
        pending.length === 1
          ? await this.fh.write(pending[0], 0, pending[0].length, pos)
          : await this.fh.writev(pending, pos);
      if (bytesWritten === 0) throw new Error('the host wrote 0 bytes');
      pos += bytesWritten;
      if (pos > this.size) this.size = pos;
      pending = advance(pending, bytesWritten);
    }
  }

  /** A write barrier / durability point; a no-op under cache=unsafe, as QEMU's flush is. */
  async sync(): Promise<void> {
    if (this.readOnly || this.cache === 'unsafe') return;
    this.syncs++;
    await this.fh.datasync();
  }

  async truncate(len: number): Promise<void> {
    await this.fh.truncate(len);
    this.size = len;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** The views left after `n` bytes of a scatter list were transferred. */
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

/** Views of `len` bytes starting `start` bytes into a scatter list (no copy). */
export function sliceBufs(bufs: readonly Uint8Array[], start: number, len: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (len === 0) break;
    if (start >= b.length) {
      start -= b.length;
      continue;
    }
    const n = Math.min(b.length - start, len);
    out.push(b.subarray(start, start + n));
    start = 0;
    len -= n;
  }
  return out;
}
