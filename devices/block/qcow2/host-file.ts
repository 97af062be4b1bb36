/**
 * The host file under a qcow2 image. Unlike RawFile (whose size is the guest's disk and fixed),
 * an image file grows as clusters are allocated, and the format layer itself decides where each
 * byte goes, so this is a thin positioned-I/O wrapper: readv/writev straight between the file
 * and the caller's views (guest RAM for data clusters: no copy), and the cache mode's meaning of
 * a sync (`unsafe` skips them; `writethrough` syncs after each data write, via the caller).
 */
import { constants, open, type FileHandle } from 'node:fs/promises';
import { readFully, writeFully } from '../scatter-io.js';
import type { CacheMode } from '../../../main/vm/config.js';
import { lockImage, type ImageLock } from '../image-lock.js';
import { loadHostNative } from '../../host-native.js';
import { ReadNow, type ReadNowStats } from '../read-now.js';

export class HostFile {
  syncs = 0;
  private lock: ImageLock | undefined;
  /** Reads the host's page cache serves at once (read-now.ts). */
  private readonly now: ReadNow;
  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    public size: number,
    readonly readOnly: boolean,
    public cache: CacheMode,
  ) {
    const r = loadHostNative();
    this.now = new ReadNow(fh.fd, r.native, false, r.reason);
  }

  readNowStats(): ReadNowStats {
    return this.now.stats();
  }

  /** `lock` false: no image locks (QEMU's force-share), for read-only inspection only. */
  static async open(
    path: string,
    readOnly: boolean,
    cache: CacheMode,
    lock = true,
  ): Promise<HostFile> {
    const fh = await open(path, readOnly ? constants.O_RDONLY : constants.O_RDWR);
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new Error('is a directory, not a disk image');
      if (!st.isFile()) throw new Error('is not a regular file');
      const f = new HostFile(fh, path, st.size, readOnly, cache);
      if (lock) f.lock = lockImage(fh.fd, path, st, !readOnly);
      return f;
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  /** Reads exactly the views' total length at `pos`; bytes past the end of the file read as 0. */
  readv(pos: number, bufs: readonly Uint8Array[]): Promise<void> {
    return readFully(this.fh, pos, bufs, this.now);
  }

  async read(pos: number, len: number): Promise<Uint8Array> {
    const b = new Uint8Array(len);
    await this.readv(pos, [b]);
    return b;
  }

  async writev(pos: number, bufs: readonly Uint8Array[]): Promise<void> {
    const end = await writeFully(this.fh, pos, bufs);
    if (end > this.size) this.size = end;
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

  /** Keeps only a reader's lock: the image is about to be a backing file (see ImageLock). */
  downgradeLock(): void {
    this.lock?.downgrade();
  }

  close(): Promise<void> {
    this.lock?.release();
    return this.fh.close();
  }
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
