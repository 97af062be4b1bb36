/**
 * A raw disk image: the guest's sectors are the file's bytes. Reads and writes go straight
 * between the file and the caller's buffer (a view of guest RAM: never copied), at the caller's
 * offset, through Node's asynchronous FileHandle API (libuv's thread pool), so the vCPU never
 * waits on the host.
 *
 * Cache modes (QEMU's names and meanings):
 * - `writeback`: writes complete once in the host page cache; flush() = fdatasync.
 * - `writethrough`: each write is fdatasync'ed before it completes; flush() = fdatasync.
 * - `unsafe`: flush() does nothing. Fast, and a host crash or power loss can lose or tear data
 *   the guest believes durable: only for scratch disks and installs you can redo.
 *
 * Discard and write-zeroes punch holes (fallocate) through the optional host-helper addon; without
 * it, or on a file system that cannot, they write zeros, and stats() says `sparse: false`.
 */
import { readFully, writeFully } from './scatter-io.js';
import { constants, type FileHandle, open } from 'node:fs/promises';
import type { CacheMode } from '../../main/vm/config.js';
import { BlockError, type VectoredBlockBackend } from './backend.js';
import { loadHostNative, type HostNative } from './host-native.js';
import { lockImage, type ImageLock } from './image-lock.js';
import { ReadNow, type ReadNowStats } from './read-now.js';
import { admitRequest, hostIoError, totalLength } from './request-check.js';

/** The subset of FileHandle the raw back end uses (tests wrap a real one to observe calls). */
export type RawFileHandle = Pick<
  FileHandle,
  'fd' | 'read' | 'write' | 'readv' | 'writev' | 'datasync' | 'stat' | 'close'
>;

export interface RawFileOptions {
  readOnly?: boolean;
  cache?: CacheMode;
  /**
   * Bypass the host page cache (O_DIRECT). Meant for benchmarks: every buffer must then be
   * aligned to 512 bytes in host memory (views of a WebAssembly.Memory at aligned offsets are).
   */
  direct?: boolean;
  /** Hole-punching helpers; default: the addon if it loads; null: always write zeros. */
  native?: HostNative | null;
  /** Opens the image (default: fs.promises.open). */
  openFile?: (path: string, flags: number) => Promise<RawFileHandle>;
  /** Take QEMU's image locks (default true; false: QEMU's force-share, for inspection only). */
  lock?: boolean;
  log?: (msg: string) => void;
}

export interface RawFileStats extends ReadNowStats {
  cache: CacheMode;
  direct: boolean;
  /** Whether discard/write-zeroes free host blocks (hole punching works here). */
  sparse: boolean;
  /** Why not, when `sparse` is false. */
  sparseUnavailable?: string;
  /** fdatasync calls made (flushes, and every write in writethrough). */
  syncs: number;
  holesPunched: number;
  /** Bytes of zeros written because a range could not be punched or zeroed in place. */
  zeroBytesWritten: number;
}

const ZERO_CHUNK = 1 << 20;
/**
 * Source of zeros for the fallback. Allocated in a WebAssembly.Memory because its base is page
 * aligned, so the same buffer also works for O_DIRECT writes. Never written to.
 */
let zeroChunk: Uint8Array | undefined;
const zeros = (): Uint8Array =>
  (zeroChunk ??= new Uint8Array(new WebAssembly.Memory({ initial: ZERO_CHUNK >> 16 }).buffer));

/** Error codes meaning "this host/file system cannot do that fallocate mode". */
const UNSUPPORTED = new Set(['EOPNOTSUPP', 'ENOSYS', 'ENOTSUP', 'ENODEV', 'EINVAL']);

function describeOpenError(e: NodeJS.ErrnoException, readOnly: boolean): string {
  switch (e.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return readOnly ? 'permission denied' : 'permission denied (add ",ro" to open it read-only)';
    case 'EISDIR':
      return 'is a directory, not a disk image';
    case 'EROFS':
      return 'on a read-only file system (add ",ro" to open it read-only)';
    case 'EINVAL':
      return 'cannot be opened with these flags (O_DIRECT unsupported here?)';
    default:
      return e.message;
  }
}

export class RawFile implements VectoredBlockBackend {
  private cache: CacheMode;
  private native: HostNative | null;
  private sparseUnavailable: string | undefined;
  private syncs = 0;
  private holesPunched = 0;
  private zeroBytesWritten = 0;
  private active = 0;
  private closing = false;
  private drained: (() => void) | undefined;
  private lock: ImageLock | undefined;
  /** Reads the host's page cache serves at once (read-now.ts). */
  private readonly now: ReadNow;

  private constructor(
    private readonly fh: RawFileHandle,
    readonly name: string,
    readonly size: number,
    readonly readOnly: boolean,
    private readonly direct: boolean,
    opts: RawFileOptions,
    private readonly log: (msg: string) => void,
  ) {
    this.cache = opts.cache ?? 'writeback';
    if (opts.native !== undefined) {
      this.native = opts.native;
      if (!opts.native) this.sparseUnavailable = 'host helpers disabled';
    } else {
      const r = loadHostNative();
      this.native = r.native;
      this.sparseUnavailable = r.reason;
    }
    this.now = new ReadNow(fh.fd, this.native, direct, this.sparseUnavailable);
  }

  /** Opens an existing image; errors are BlockErrors that name the file and the problem. */
  static async open(path: string, opts: RawFileOptions = {}): Promise<RawFile> {
    const readOnly = opts.readOnly ?? false;
    const direct = opts.direct ?? false;
    let flags = readOnly ? constants.O_RDONLY : constants.O_RDWR;
    if (direct) {
      if (constants.O_DIRECT === undefined) {
        throw new BlockError('unsupported', `disk image ${path}: O_DIRECT is not available here`);
      }
      flags |= constants.O_DIRECT;
    }
    let fh: RawFileHandle;
    try {
      fh = await (opts.openFile ?? open)(path, flags);
    } catch (e) {
      throw new BlockError(
        'io',
        `disk image ${path}: ${describeOpenError(e as NodeJS.ErrnoException, readOnly)}`,
      );
    }
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new Error('is a directory, not a disk image');
      if (!st.isFile()) throw new Error('is not a regular file (block devices are not supported)');
      if (st.size % 512 !== 0) {
        throw new Error(`its size (${st.size} bytes) is not a multiple of 512`);
      }
      const lock = opts.lock === false ? undefined : lockImage(fh.fd, path, st, !readOnly);
      const f = new RawFile(fh, path, st.size, readOnly, direct, opts, opts.log ?? (() => {}));
      f.lock = lock;
      return f;
    } catch (e) {
      await fh.close().catch(() => {});
      if (e instanceof BlockError) throw e;
      throw new BlockError('io', `disk image ${path}: ${(e as Error).message}`);
    }
  }

  get cacheMode(): CacheMode {
    return this.cache;
  }

  /** Takes effect for the next request; cheap because no mode needs a different open(). */
  setCacheMode(mode: CacheMode): void {
    this.cache = mode;
  }

  stats(): RawFileStats {
    return {
      cache: this.cache,
      direct: this.direct,
      sparse: this.native !== null,
      ...(this.sparseUnavailable && !this.native
        ? { sparseUnavailable: this.sparseUnavailable }
        : {}),
      syncs: this.syncs,
      holesPunched: this.holesPunched,
      zeroBytesWritten: this.zeroBytesWritten,
      ...this.now.stats(),
    };
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.readv(offset, [buf]);
  }

  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.writev(offset, [buf]);
  }

  readv(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    return this.run('read', offset, totalLength(bufs), false, () =>
      readFully(this.fh, offset, bufs, this.now),
    );
  }

  writev(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    return this.run('write', offset, totalLength(bufs), true, async () => {
      await writeFully(this.fh, offset, bufs);
      if (this.cache === 'writethrough') await this.sync();
    });
  }

  flush(): Promise<void> {
    if (this.readOnly || this.cache === 'unsafe')
      return this.run('flush', 0, 0, false, async () => {});
    return this.run('flush', 0, 0, false, () => this.sync());
  }

  discard(offset: number, length: number): Promise<void> {
    return this.run('discard', offset, length, true, () => this.zeroRange(offset, length, true));
  }

  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    return this.run('write-zeroes', offset, length, true, async () => {
      await this.zeroRange(offset, length, unmap);
      if (this.cache === 'writethrough') await this.sync();
    });
  }

  /** Waits for requests already started, then closes the file; later calls are refused. */
  /**
   * Whether `offset` lies in data or in a hole of the file, and how far that holds (SEEK_DATA /
   * SEEK_HOLE through the addon, as `qemu-img map` asks a raw file); undefined where the host
   * cannot tell (then every byte counts as data).
   */
  allocationAt(offset: number): { data: boolean; length: number } | undefined {
    const seek = this.native?.seekData;
    if (!seek || offset >= this.size) return undefined;
    try {
      const data = seek(this.fh.fd, offset, false);
      if (data < 0 || data >= this.size) return { data: false, length: this.size - offset };
      if (data > offset) return { data: false, length: data - offset };
      const hole = seek(this.fh.fd, offset, true);
      return { data: true, length: Math.min(hole, this.size) - offset };
    } catch {
      return undefined;
    }
  }

  /** Keeps only a reader's lock: the image is about to be a backing file (see ImageLock). */
  downgradeLock(): void {
    this.lock?.downgrade();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.active > 0) await new Promise<void>((r) => (this.drained = r));
    this.lock?.release();
    await this.fh.close();
  }

  private async sync(): Promise<void> {
    this.syncs++;
    await this.fh.datasync();
  }

  /** Punches (unmap) or zeroes in place; falls back to writing zeros where the host cannot. */
  private async zeroRange(offset: number, length: number, unmap: boolean): Promise<void> {
    if (length === 0) return;
    if (this.native) {
      try {
        if (unmap) {
          await this.native.punchHole(this.fh.fd, offset, length);
          this.holesPunched++;
        } else await this.native.zeroRange(this.fh.fd, offset, length);
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (!UNSUPPORTED.has(code)) throw e;
        if (unmap) {
          // This file system cannot punch: stop trying, say so once.
          this.sparseUnavailable = `${this.name}: hole punching unsupported (${code})`;
          this.native = null;
          this.log(`${this.sparseUnavailable}; discard and write-zeroes now write zeros`);
        }
      }
    }
    const z = zeros();
    for (let done = 0; done < length;) {
      const n = Math.min(z.length, length - done);
      const { bytesWritten } = await this.fh.write(z, 0, n, offset + done);
      if (bytesWritten === 0) throw new Error('the host wrote 0 bytes');
      done += bytesWritten;
      this.zeroBytesWritten += bytesWritten;
    }
  }

  /** Validates, refuses writes on a read-only disk, tracks in-flight calls, and maps errors. */
  private async run(
    what: string,
    offset: number,
    length: number,
    writes: boolean,
    op: () => Promise<void>,
  ): Promise<void> {
    admitRequest(this, this.closing, what, offset, length, writes);
    this.active++;
    try {
      await op();
    } catch (e) {
      throw hostIoError(this.name, what, offset, length, e);
    } finally {
      if (--this.active === 0 && this.drained) this.drained();
    }
  }
}
