/**
 * A qcow2 image as a BlockBackend: guest clusters map through the L1 table (in memory) and L2
 * tables (cached) to data clusters in the host file, to zeros, to compressed clusters, or — when
 * unallocated — to the backing file.
 *
 * Data moves between the file and the caller's own views (guest RAM): never copied, except the
 * head and tail a partial write of a new cluster must fill from the old contents.
 *
 * Write ordering (the image must pass `qemu-img check` after a SIGKILL or power loss at any
 * instant; at worst clusters leak):
 * 1. allocate: the refcount goes up in memory; guest data is written to the new cluster;
 * 2. the L2 entry changes in memory only (the table is marked dirty);
 * 3. write-back (on FLUSH, when too many tables are dirty, on close): refcount blocks are
 *    written, sync (data and refcounts durable), dirty L2 tables written, sync if L1 changed,
 *    L1 sectors written, sync; only then are clusters the old entries pointed at released
 *    (refcount down), so a refcount never drops while a table on disk still points at it.
 * FLUSH = write-back + fdatasync: everything completed before it is durable.
 */
import type { ReadNowStats } from '../read-now.js';
import type { CacheMode } from '../../../main/vm/config.js';
import {
  BlockError,
  type BlockBackend,
  type SectorCipher,
  type VectoredBlockBackend,
} from '../backend.js';
import { admitRequest, hostIoError, totalLength } from '../request-check.js';
import {
  COPIED,
  decodeL2,
  encodeL2,
  l1Offset,
  readWord,
  setL1,
  writeWord,
  type Mapping,
} from './entries.js';
import {
  COMPRESSION_ZLIB,
  encodeCompressedL2,
  inflateCluster,
  zstdRefusal,
} from './compression.js';
import { HostFile, sliceBufs } from './host-file.js';
import { L2Cache } from './l2-cache.js';
import {
  CRYPT_AES,
  featureNames,
  INCOMPAT_COMPRESSION,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTL2,
  parseHeader,
  Qcow2FormatError,
  type Qcow2Header,
} from './qcow2-header.js';
import { Qcow2CorruptError, Refcounts } from './refcounts.js';
import type { Qcow2Meta } from './metadata.js';
import { rebuildRefcounts } from './repair.js';
import { RwLock } from './rw-lock.js';
import { MetadataGuard } from './overlap.js';

export interface Qcow2OpenOptions {
  readOnly?: boolean;
  cache?: CacheMode;
  /** L2 cache size in bytes (QEMU's l2-cache-size); default: enough for the whole disk, ≤ 32 MiB. */
  l2CacheBytes?: number;
  /**
   * Opens the LUKS header of an encrypted image (crypt method 2) — `read` reads inside the
   * clusters the encryption header extension names — and returns the data clusters' cipher.
   */
  unlock?: (
    read: (offset: number, length: number) => Promise<Uint8Array>,
    regionBytes: number,
  ) => Promise<SectorCipher>;
  /** false: no image locks (QEMU's force-share; see image-lock.ts). */
  lock?: boolean;
  /** Opens the backing file named in the header (resolved path, format or undefined to probe). */
  openBacking?: (path: string, format: string | undefined) => Promise<BlockBackend>;
  /**
   * For metadata work only — snapshots, resize —: the backing file stays closed, an encrypted
   * image needs no key, and guest reads and writes are refused.
   */
  metadataOnly?: boolean;
  /**
   * Copy-on-read: every cluster read from the backing file is also written into this image
   * (whole clusters, after the guest has its data); a guest write to the same cluster wins.
   */
  copyOnRead?: boolean;
  log?: (msg: string) => void;
}

export interface Qcow2Stats extends ReadNowStats {
  cache: CacheMode;
  syncs: number;
  clusterSize: number;
  l2CacheTables: number;
  l2CacheHits: number;
  l2CacheMisses: number;
  allocations: number;
  /** Clusters copy-on-read has written into this image, and copies that failed (e.g. ENOSPC). */
  corClusters: number;
  corFailures: number;
  backing?: string;
  fileBytes: number;
}

/**
 * Queues an I/O job of a loop that still awaits other things: its failure is reported by the
 * Promise.all that awaits the queue, or — when the loop itself fails first — dropped with it,
 * never left as an unhandled rejection.
 */
function queue(jobs: Promise<void>[], p: Promise<void>): void {
  p.catch(() => {});
  jobs.push(p);
}

/** One cluster copy-on-read read from the backing file, to be written into the image. */
interface CorCopy {
  cluster: number;
  data: Uint8Array;
}

const KNOWN_INCOMPAT =
  INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/** A qcow2 problem that names the file: what users see. */
function fail(path: string, msg: string): never {
  throw new BlockError('io', `disk image ${path}: ${msg}`);
}

export class Qcow2Image implements VectoredBlockBackend {
  readonly clusterSize: number;
  private readonly l2Entries: number;
  private readonly l1Dirty = new Set<number>();
  private readonly rw = new RwLock();
  private pendingFree: number[] = [];
  /** Next free byte for compressed data (inside a host cluster already counted), if any. */
  private compressedTail: number | undefined;
  private l2Loading = new Map<number, Promise<Uint8Array>>();
  private unsynced = false;
  private allocations = 0;
  private corClusters = 0;
  private corFailures = 0;
  private copyOnRead = false;
  private metadataOnly = false;
  private log: (msg: string) => void = () => {};
  private closed = false;

  private constructor(
    private readonly file: HostFile,
    readonly name: string,
    readonly header: Qcow2Header,
    private l1: Uint8Array,
    private readonly refs: Refcounts | undefined,
    private readonly l2: L2Cache,
    readonly backing: BlockBackend | undefined,
    readonly readOnly: boolean,
    /** Encrypts data clusters (LUKS): IV = the host sector, as QEMU's crypt_physical_offset. */
    private readonly cipher: SectorCipher | undefined,
  ) {
    this.clusterSize = 2 ** header.clusterBits;
    this.l2Entries = this.clusterSize / 8;
  }

  /** The virtual disk size (whole sectors); changes only through a resize. */
  get size(): number {
    return Math.ceil(this.header.size / 512) * 512;
  }

  static async open(path: string, opts: Qcow2OpenOptions = {}): Promise<Qcow2Image> {
    const log = opts.log ?? (() => {});
    let readOnly = opts.readOnly ?? false;
    let file: HostFile;
    try {
      file = await HostFile.open(path, readOnly, opts.cache ?? 'writeback', opts.lock);
    } catch (e) {
      if (e instanceof BlockError) throw e; // a lock held elsewhere: it names the file
      const err = e as NodeJS.ErrnoException;
      const why =
        err.code === 'ENOENT'
          ? 'no such file'
          : err.code === 'EACCES' || err.code === 'EPERM'
            ? 'permission denied'
            : err.code === 'EROFS'
              ? 'on a read-only file system (add ",ro")'
              : err.message;
      fail(path, why);
    }
    let backing: BlockBackend | undefined;
    try {
      const head = await file.read(0, Math.min(file.size, 2 * 1024 * 1024));
      let h: Qcow2Header;
      try {
        h = parseHeader(head, file.size);
      } catch (e) {
        if (e instanceof Qcow2FormatError) fail(path, e.message);
        throw e;
      }
      const unknown = h.incompatible & ~KNOWN_INCOMPAT;
      if (unknown) {
        fail(path, `unsupported incompatible features: ${featureNames(h, 0, unknown).join(', ')}`);
      }
      if (h.incompatible & INCOMPAT_DATA_FILE) fail(path, 'external data files are not supported');
      if (h.incompatible & INCOMPAT_EXTL2) fail(path, 'extended L2 entries are not supported');
      if (h.incompatible & INCOMPAT_COMPRESSION && h.compressionType !== COMPRESSION_ZLIB) {
        throw new BlockError('unsupported', zstdRefusal(`disk image ${path}`));
      }
      if (h.cryptMethod === CRYPT_AES) fail(path, 'AES-CBC encryption (method 1) is not supported');
      const why: string[] = [];
      if (h.incompatible & INCOMPAT_CORRUPT) {
        why.push('it is marked corrupt (repair it with `qemu-img check -r all`)');
      }
      if (h.version === 2)
        why.push('qcow2 version 2 is read-only here (`qemu-img amend -o compat=1.1`)');
      if (!readOnly && why.length > 0) {
        log(`${path}: opened read-only: ${why.join('; ')}`);
        await file.close();
        file = await HostFile.open(path, true, opts.cache ?? 'writeback', opts.lock);
        readOnly = true;
      }
      const cs = 2 ** h.clusterBits;
      const l1 = await file.read(h.l1Offset, h.l1Size * 8);
      let refs: Refcounts | undefined;
      if (!readOnly) {
        const f = file;
        refs = await Refcounts.load(
          file,
          h.clusterBits,
          h.refcountOrder,
          h.refcountTableOffset,
          h.refcountTableClusters,
          async (offset, clusters) => {
            const b = new Uint8Array(12);
            const dv = new DataView(b.buffer);
            dv.setBigUint64(0, BigInt(offset));
            dv.setUint32(8, clusters);
            await f.writev(48, [b]);
            await f.sync();
          },
        );
      }
      const needTables = Math.ceil(h.size / cs / (cs / 8));
      const capTables = Math.max(
        2,
        Math.floor((opts.l2CacheBytes ?? Math.min(needTables * cs, 32 << 20)) / cs),
      );
      let cipher: SectorCipher | undefined;
      const ch = h.cryptoHeader;
      if (ch) {
        if (opts.unlock) {
          const f = file;
          cipher = await opts.unlock((off, len) => f.read(ch.offset + off, len), ch.length);
        } else if (!opts.metadataOnly) fail(path, 'is encrypted (LUKS) and no key was given');
      }
      if (h.backingFile && !opts.metadataOnly) {
        if (!opts.openBacking) fail(path, `has a backing file (${h.backingFile}) and no opener`);
        backing = await opts.openBacking(h.backingFile, h.backingFormat);
      }
      const img = new Qcow2Image(
        file,
        path,
        h,
        l1,
        refs,
        new L2Cache(capTables),
        backing,
        readOnly,
        cipher,
      );
      if (!readOnly) {
        await img.prepareForWriting(log);
        refs!.guard = await MetadataGuard.scan(file, h, l1, refs!);
      }
      img.copyOnRead = (opts.copyOnRead ?? false) && !readOnly && backing !== undefined;
      img.log = log;
      img.metadataOnly = opts.metadataOnly ?? false;
      return img;
    } catch (e) {
      await backing?.close().catch(() => {});
      await file.close().catch(() => {});
      if (e instanceof BlockError) throw e;
      if (e instanceof Qcow2CorruptError || e instanceof Qcow2FormatError) fail(path, e.message);
      fail(path, (e as Error).message);
    }
  }

  /** Dirty bit: refcounts may be stale (lazy refcounts) — rebuild them. Autoclear bits: clear. */
  private async prepareForWriting(log: (msg: string) => void): Promise<void> {
    const h = this.header;
    if (h.incompatible & INCOMPAT_DIRTY) {
      log(`${this.name}: the dirty bit is set (lazy refcounts): repairing refcounts`);
      const r = await rebuildRefcounts(this.file, h, this.l1, this.refs!, true);
      if (r.unfixed > 0) throw new Qcow2CorruptError(r.messages.join('; '));
      await this.refs!.writeDirty();
      await this.file.sync();
      h.incompatible &= ~INCOMPAT_DIRTY;
      await this.writeHeaderU64(72, h.incompatible);
      await this.file.sync();
      log(`${this.name}: ${r.fixed} refcounts fixed`);
    }
    if (h.autoclear !== 0n) {
      // We do not maintain what those bits promise (e.g. persistent bitmaps): say so on disk.
      h.autoclear = 0n;
      await this.writeHeaderU64(88, 0n);
      await this.file.sync();
    }
  }

  private async writeHeaderU64(at: number, v: bigint): Promise<void> {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v);
    await this.file.writev(at, [b]);
  }

  setCacheMode(mode: CacheMode): void {
    this.file.cache = mode;
  }

  stats(): Qcow2Stats {
    return {
      cache: this.file.cache,
      syncs: this.file.syncs,
      clusterSize: this.clusterSize,
      l2CacheTables: this.l2.size,
      l2CacheHits: this.l2.hits,
      l2CacheMisses: this.l2.misses,
      allocations: this.allocations,
      corClusters: this.corClusters,
      corFailures: this.corFailures,
      ...(this.backing ? { backing: this.backing.name } : {}),
      fileBytes: this.file.size,
      ...this.file.readNowStats(),
    };
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.readv(offset, [buf]);
  }

  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.writev(offset, [buf]);
  }

  readv(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    const len = totalLength(bufs);
    return this.run('read', offset, len, false, async () => {
      const copies: CorCopy[] = [];
      await this.rw.shared(async () => {
        const jobs: Promise<void>[] = [];
        let run: { host: number; views: Uint8Array[]; len: number } | undefined;
        const flushRun = () => {
          if (run) jobs.push(this.readData(run.host, run.views));
          run = undefined;
        };
        try {
          for (let pos = 0; pos < len;) {
            const g = offset + pos;
            const n = Math.min(this.clusterSize - (g % this.clusterSize), len - pos);
            const views = sliceBufs(bufs, pos, n);
            const m = await this.lookup(g);
            if (m.kind === 'data') {
              const host = m.host + (g % this.clusterSize);
              if (run && run.host + run.len === host) {
                run.views.push(...views);
                run.len += n;
              } else {
                flushRun();
                run = { host, views, len: n };
              }
            } else {
              flushRun();
              if (m.kind === 'unallocated' && this.copyOnRead) {
                jobs.push(this.readForCopy(g, views).then((c) => void copies.push(c)));
              } else jobs.push(this.readFrom(m, g, views, n));
            }
            pos += n;
          }
        } catch (err) {
          await Promise.allSettled(jobs); // reads already started must not fail unobserved
          throw err;
        }
        flushRun();
        await Promise.all(jobs);
      });
      if (copies.length > 0) await this.rw.exclusive(() => this.copyIn(copies));
    });
  }

  /** Copy-on-read: the whole backing cluster holding `g`, of which the guest gets its part. */
  private async readForCopy(g: number, views: Uint8Array[]): Promise<CorCopy> {
    const cs = this.clusterSize;
    const c = Math.floor(g / cs);
    const data = new Uint8Array(cs);
    await this.readFrom({ kind: 'unallocated' }, c * cs, [data], cs);
    let p = g % cs;
    for (const v of views) {
      v.set(data.subarray(p, p + v.length));
      p += v.length;
    }
    return { cluster: c, data };
  }

  /**
   * Copy-on-read, second half (exclusive lock): clusters still unallocated get the backing's
   * data — a guest write that got there first (it holds the lock before us) wins, and one that
   * comes later finds the cluster ours and writes in place. Data first, then the L2 entries.
   * A failure only costs the copy: the guest has its data already.
   */
  private async copyIn(copies: CorCopy[]): Promise<void> {
    try {
      const cs = this.clusterSize;
      const maps: [number, Mapping][] = [];
      const jobs: Promise<void>[] = [];
      for (const { cluster, data } of copies) {
        if ((await this.lookup(cluster * cs)).kind !== 'unallocated') continue;
        if (data.every((b) => b === 0)) {
          maps.push([cluster, { kind: 'zero', host: 0, copied: false }]);
          continue;
        }
        const host = await this.allocateCluster();
        queue(jobs, this.writeData(host, [data]));
        maps.push([cluster, { kind: 'data', host, copied: true }]);
      }
      await Promise.all(jobs);
      this.unsynced = true;
      for (const [c, m] of maps) await this.setMapping(c, m);
      this.corClusters += maps.length;
      await this.maybeWriteback();
    } catch (e) {
      if (this.corFailures++ === 0) {
        this.log(
          `${this.name}: copy-on-read failed (the guest's reads go on): ${(e as Error).message}`,
        );
      }
    }
  }

  writev(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    const len = totalLength(bufs);
    return this.run('write', offset, len, true, async () => {
      // Fast path: every cluster is allocated and ours alone — plain data writes, shared lock.
      const done = await this.rw.shared(async () => {
        const maps: Mapping[] = [];
        for (let g = offset; g < offset + len; g += this.clusterSize - (g % this.clusterSize)) {
          const m = await this.lookup(g);
          if (m.kind !== 'data' || !m.copied) return false;
          maps.push(m);
        }
        await this.writeMapped(offset, bufs, len, maps);
        return true;
      });
      if (!done) await this.rw.exclusive(() => this.allocatingWrite(offset, bufs, len));
      if (this.file.cache === 'writethrough') await this.rw.exclusive(() => this.flushLocked());
    });
  }

  flush(): Promise<void> {
    return this.run('flush', 0, 0, false, () => this.rw.exclusive(() => this.flushLocked()));
  }

  discard(offset: number, length: number): Promise<void> {
    return this.run('discard', offset, length, true, () =>
      this.rw.exclusive(async () => {
        // Only whole clusters can be released; a partial one is left as it is (discard is a hint).
        const first = Math.ceil(offset / this.clusterSize);
        const end = Math.floor(Math.min(offset + length, this.size) / this.clusterSize);
        for (let c = first; c < end; c++) {
          await this.setMapping(
            c,
            this.backing ? { kind: 'zero', host: 0, copied: false } : { kind: 'unallocated' },
          );
        }
        await this.maybeWriteback();
      }),
    );
  }

  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    return this.run('write-zeroes', offset, length, true, async () => {
      const cs = this.clusterSize;
      const end = offset + length;
      const first = Math.ceil(offset / cs) * cs;
      const last = Math.floor(end / cs) * cs;
      if (first >= last) {
        await this.writeZeroBytes(offset, length);
        return;
      }
      if (first > offset) await this.writeZeroBytes(offset, first - offset);
      await this.rw.exclusive(async () => {
        for (let c = first / cs; c < last / cs; c++) {
          const m = await this.lookup(c * cs);
          // Without unmap a cluster that is ours stays allocated (the guest may want it there).
          const keep = !unmap && (m.kind === 'data' || m.kind === 'zero') && m.copied && m.host;
          await this.setMapping(
            c,
            keep
              ? { kind: 'zero', host: m.host, copied: true }
              : { kind: 'zero', host: 0, copied: false },
          );
        }
        await this.maybeWriteback();
      });
      if (end > last) await this.writeZeroBytes(last, end - last);
      if (this.file.cache === 'writethrough') await this.rw.exclusive(() => this.flushLocked());
    });
  }

  /**
   * Runs a whole-image metadata operation (snapshots, resize) alone: guest I/O waits, every
   * cache is written back and synced first, and the L2 cache is emptied before and after (the
   * operation changes tables on disk).
   */
  withMetadata<T>(fn: (m: Qcow2Meta) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new BlockError('io', `${this.name}: closed`));
    if (this.readOnly || !this.refs) {
      return Promise.reject(
        new BlockError('read-only', `disk image ${this.name}: opened read-only`),
      );
    }
    const refs = this.refs;
    return this.rw.exclusive(async () => {
      await this.flushLocked();
      this.l2.clear();
      const m: Qcow2Meta = { file: this.file, header: this.header, refs, l1: this.l1 };
      try {
        return await fn(m);
      } finally {
        this.l1 = m.l1;
        this.l2.clear();
        this.compressedTail = undefined; // the operation may have freed its cluster
      }
    });
  }

  /** The header and file, for reading metadata (the snapshot table) of an open image. */
  get metadataFile(): Pick<Qcow2Meta, 'file' | 'header'> {
    return { file: this.file, header: this.header };
  }

  /**
   * What guest offset `g` maps to in this image alone (block status: `img map`, convert), and for
   * how many bytes from `g` that holds: to the cluster's end, or — where no L2 table exists — to
   * the end of what that table would map (so a vast empty disk is walked in large steps).
   */
  mappingOf(g: number): Promise<{ mapping: Mapping; length: number }> {
    if (g < 0 || g >= this.size) throw new BlockError('out-of-range', `${this.name}: ${g}`);
    return this.rw.shared(async () => {
      const cs = this.clusterSize;
      const mapping = await this.lookup(g);
      let end = (Math.floor(g / cs) + 1) * cs;
      const l1i = Math.floor(g / cs / this.l2Entries);
      if (mapping.kind === 'unallocated' && !(await this.l2Table(l1i, false))) {
        end = (l1i + 1) * this.l2Entries * cs;
      }
      return { mapping, length: Math.min(end, this.size) - g };
    });
  }

  /**
   * Stores guest cluster `c`, now unallocated, as `deflated` (from deflateCluster): packed after
   * the previous compressed cluster, in the same host cluster or running on into the next one
   * when that is the one the allocator hands out; every host cluster touched counts one more use.
   */
  writeCompressed(c: number, deflated: Uint8Array): Promise<void> {
    const cs = this.clusterSize;
    return this.run('compressed write', c * cs, Math.min(cs, this.size - c * cs), true, () =>
      this.rw.exclusive(async () => {
        if (this.cipher) {
          throw new BlockError('unsupported', `${this.name}: encrypted images are not compressed`);
        }
        if ((await this.lookup(c * cs)).kind !== 'unallocated') {
          throw new BlockError('unsupported', `${this.name}: cluster ${c} is already written`);
        }
        const len = deflated.length;
        const t = this.compressedTail;
        let start: number;
        if (t !== undefined && cs - (t % cs) >= len) {
          start = t;
          await this.refs!.increment(Math.floor(t / cs));
        } else {
          const fresh = await this.allocateCluster();
          start = t !== undefined && fresh === t - (t % cs) + cs ? t : fresh;
          if (start === t) await this.refs!.increment(Math.floor(t / cs));
        }
        const end = Math.ceil((start + len) / 512) * 512;
        const padded = new Uint8Array(end - start);
        padded.set(deflated);
        await this.file.writev(start, [padded]);
        this.unsynced = true;
        this.compressedTail = end % cs === 0 ? undefined : end;
        await this.setMapping(c, { kind: 'compressed', start, end });
        await this.maybeWriteback();
      }),
    );
  }

  /**
   * Drops every cluster [offset, offset+length) touches from this image, so that the backing
   * file shows through again: what `img commit` leaves behind in the overlay.
   */
  deallocate(offset: number, length: number): Promise<void> {
    return this.run('deallocate', offset, length, true, () =>
      this.rw.exclusive(async () => {
        const first = Math.floor(offset / this.clusterSize);
        const end = Math.ceil(Math.min(offset + length, this.size) / this.clusterSize);
        for (let c = first; c < end; c++) {
          if ((await this.lookup(c * this.clusterSize)).kind !== 'unallocated') {
            await this.setMapping(c, { kind: 'unallocated' });
          }
        }
        await this.writeback();
      }),
    );
  }

  /**
   * Keeps only a reader's lock on this image's file (its backing files have one already): it is
   * about to be an overlay's backing file. Call it once written back (flush).
   */
  downgradeLock(): void {
    this.file.downgradeLock();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.rw.exclusive(async () => {
      if (!this.readOnly) await this.flushLocked();
      this.closed = true;
    });
    await this.file.close();
    await this.backing?.close();
  }

  // ——— internals ———

  private async writeZeroBytes(offset: number, length: number): Promise<void> {
    const z = new Uint8Array(length);
    const done = await this.rw.shared(async () => {
      const m = await this.lookup(offset);
      if (m.kind !== 'data' || !m.copied) return false;
      await this.writeMapped(offset, [z], length, [m]);
      return true;
    });
    if (!done) await this.rw.exclusive(() => this.allocatingWrite(offset, [z], length));
  }

  /** Writes into clusters already mapped (`maps[i]` for the i-th cluster touched), merging runs. */
  private async writeMapped(
    offset: number,
    bufs: readonly Uint8Array[],
    len: number,
    maps: Mapping[],
  ): Promise<void> {
    const jobs: Promise<void>[] = [];
    let run: { host: number; views: Uint8Array[]; len: number } | undefined;
    let i = 0;
    for (let pos = 0; pos < len; i++) {
      const g = offset + pos;
      const n = Math.min(this.clusterSize - (g % this.clusterSize), len - pos);
      const m = maps[i] as { host: number };
      this.checkInPlace(m.host);
      const host = m.host + (g % this.clusterSize);
      const views = sliceBufs(bufs, pos, n);
      if (run && run.host + run.len === host) {
        run.views.push(...views);
        run.len += n;
      } else {
        if (run) jobs.push(this.writeData(run.host, run.views));
        run = { host, views, len: n };
      }
      pos += n;
    }
    if (run) jobs.push(this.writeData(run.host, run.views));
    await Promise.all(jobs);
    this.unsynced = true;
  }

  /** Under the exclusive lock: clusters that need one get a new one, filled and then mapped. */
  private async allocatingWrite(
    offset: number,
    bufs: readonly Uint8Array[],
    len: number,
  ): Promise<void> {
    const cs = this.clusterSize;
    const jobs: Promise<void>[] = [];
    const remap: [number, Mapping, Mapping][] = [];
    let run: { host: number; views: Uint8Array[]; len: number } | undefined;
    const push = (host: number, views: Uint8Array[], n: number) => {
      if (run && run.host + run.len === host) {
        run.views.push(...views);
        run.len += n;
      } else {
        if (run) queue(jobs, this.writeData(run.host, run.views));
        run = { host, views, len: n };
      }
    };
    for (let pos = 0; pos < len;) {
      const g = offset + pos;
      const inC = g % cs;
      const n = Math.min(cs - inC, len - pos);
      const c = Math.floor(g / cs);
      const views = sliceBufs(bufs, pos, n);
      const m = await this.lookup(g);
      pos += n;
      if (m.kind === 'data' && m.copied) {
        this.checkInPlace(m.host);
        push(m.host + inC, views, n);
        continue;
      }
      // A cluster that stays ours (allocated zero) is refilled in place; others get a new one.
      const reuse = m.kind === 'zero' && m.copied && m.host !== 0;
      if (reuse) this.checkInPlace(m.host);
      const host = reuse ? m.host : await this.allocateCluster();
      const head = inC > 0 ? new Uint8Array(inC) : undefined;
      const tailLen = cs - inC - n;
      const tail = tailLen > 0 ? new Uint8Array(tailLen) : undefined;
      if (head) await this.readFrom(m, c * cs, [head], inC);
      if (tail) await this.readFrom(m, g + n, [tail], tailLen);
      push(host, [...(head ? [head] : []), ...views, ...(tail ? [tail] : [])], cs);
      remap.push([c, m, { kind: 'data', host, copied: true }]);
    }
    if (run) queue(jobs, this.writeData(run.host, run.views));
    await Promise.all(jobs);
    this.unsynced = true;
    // The data is in place: now the tables may point at it.
    for (const [c, , nm] of remap) await this.setMapping(c, nm);
    await this.maybeWriteback();
  }

  private async allocateCluster(): Promise<number> {
    this.allocations++;
    return (await this.refs!.allocate()) * this.clusterSize;
  }

  /** Reads a piece of one cluster according to a non-data mapping (or any mapping, for COW). */
  private async readFrom(m: Mapping, g: number, views: Uint8Array[], n: number): Promise<void> {
    const inC = g % this.clusterSize;
    switch (m.kind) {
      case 'data':
        return this.readData(m.host + inC, views);
      case 'zero':
        for (const v of views) v.fill(0);
        return;
      case 'compressed': {
        const data = await this.decompress(m.start, m.end);
        let p = inC;
        for (const v of views) {
          v.set(data.subarray(p, p + v.length));
          p += v.length;
        }
        return;
      }
      case 'unallocated': {
        const b = this.backing;
        const avail = b ? Math.max(0, Math.min(n, b.size - g)) : 0;
        if (b && avail > 0) {
          const parts = sliceBufs(views, 0, avail);
          if (parts.length === 1) await b.read(g, parts[0]);
          else
            for (let p = 0, i = 0; i < parts.length; p += parts[i].length, i++) {
              await b.read(g + p, parts[i]);
            }
        }
        if (avail < n) for (const v of sliceBufs(views, avail, n - avail)) v.fill(0);
        return;
      }
    }
  }

  /** Reads guest data from a data cluster at `host`, decrypting it in an encrypted image. */
  /** Whether data clusters are encrypted (LUKS). */
  get encrypted(): boolean {
    return this.cipher !== undefined;
  }

  private async readData(host: number, views: Uint8Array[]): Promise<void> {
    await this.file.readv(host, views);
    this.cipher?.decrypt(host / 512, views);
  }

  /** Writes guest data to a data cluster at `host`, encrypted (into a copy) in an encrypted image. */
  /**
   * A cluster the tables say is ours to write in place must lie inside the file: an entry past
   * its end (damaged or hostile) would otherwise grow the file to wherever it points.
   */
  private checkInPlace(host: number): void {
    if (host + this.clusterSize > this.file.size) {
      throw new Qcow2CorruptError(`a data cluster at ${host} lies past the end of the file`);
    }
  }

  private writeData(host: number, views: Uint8Array[]): Promise<void> {
    const hit = this.refs?.guard?.overlap(host, totalLength(views)) ?? -1;
    if (hit >= 0) {
      return Promise.reject(
        new Qcow2CorruptError(`guest data would overwrite metadata in cluster ${hit}: refused`),
      );
    }
    return this.file.writev(host, this.cipher ? [this.cipher.encrypt(host / 512, views)] : views);
  }

  private async decompress(start: number, end: number): Promise<Uint8Array> {
    const cs = this.clusterSize;
    if (end <= start || end - start > 2 * cs) {
      throw new Qcow2CorruptError(`compressed cluster at ${start} has an impossible size`);
    }
    if (end > this.file.size + 512) {
      throw new Qcow2CorruptError(`compressed cluster at ${start} ends past the end of the file`);
    }
    return inflateCluster(await this.file.read(start, end - start), cs, start);
  }

  /** The mapping of the cluster holding guest offset `g`. */
  private async lookup(g: number): Promise<Mapping> {
    const c = Math.floor(g / this.clusterSize);
    const l1i = Math.floor(c / this.l2Entries);
    const t = await this.l2Table(l1i, false);
    if (!t) return { kind: 'unallocated' };
    const m = decodeL2(t, c % this.l2Entries, this.header.clusterBits, this.header.version);
    if ((m.kind === 'data' || m.kind === 'zero') && m.host !== 0) {
      if (m.host + this.clusterSize > this.file.size && m.kind === 'data') {
        // A data cluster past EOF reads as zeros in QEMU too; refuse only absurd offsets.
        if (m.host > 2 ** 52) throw new Qcow2CorruptError(`cluster ${c} points at ${m.host}`);
      }
      if (m.host < this.clusterSize) {
        throw new Qcow2CorruptError(`cluster ${c} points into the header`);
      }
    }
    return m;
  }

  /**
   * The L2 table for L1 index `l1i`. With `create` (exclusive lock held) the table is made ours
   * to change: allocated when there is none, copied first when it is shared with a snapshot.
   */
  private async l2Table(l1i: number, create: boolean): Promise<Uint8Array | undefined> {
    if (l1i >= this.header.l1Size) {
      throw new Qcow2CorruptError(`L1 index ${l1i} is beyond the L1 table`);
    }
    const cached = this.l2.get(l1i)?.table;
    const off = l1Offset(this.l1, l1i, this.clusterSize);
    if (!cached && off === 0) {
      if (!create) return undefined;
      const host = await this.allocateCluster();
      const t = new Uint8Array(this.clusterSize);
      this.l2.put(l1i, t, true);
      this.setL1Entry(l1i, host);
      return t;
    }
    const t = cached ?? (await this.loadL2(l1i, off));
    if (create && !(readWord(this.l1, l1i)[0] & COPIED)) return this.ownL2(l1i, off, t);
    return t;
  }

  private async loadL2(l1i: number, off: number): Promise<Uint8Array> {
    if (off < this.clusterSize || off + this.clusterSize > this.file.size) {
      throw new Qcow2CorruptError(`L2 table ${l1i} at ${off} lies outside the file`);
    }
    let p = this.l2Loading.get(l1i);
    if (!p) {
      this.l2.misses++;
      p = this.file.read(off, this.clusterSize).finally(() => this.l2Loading.delete(l1i));
      this.l2Loading.set(l1i, p);
      const t = await p;
      if (!this.l2.get(l1i)) this.l2.put(l1i, t, false);
      return t;
    }
    return p;
  }

  /**
   * An L2 table whose L1 entry lacks COPIED: shared with a snapshot (refcount above one), so it
   * is copied to a new cluster the active L1 then names — the old one is released after the
   * write-back, by which time nothing active points at it; or ours alone after all (the flag was
   * stale), so the flag is set.
   */
  private async ownL2(l1i: number, off: number, t: Uint8Array): Promise<Uint8Array> {
    if ((await this.refs!.get(off / this.clusterSize)) === 1) {
      this.setL1Entry(l1i, off);
      return t;
    }
    const host = await this.allocateCluster();
    const copy = t.slice();
    this.l2.put(l1i, copy, true);
    this.setL1Entry(l1i, host);
    this.pendingFree.push(off / this.clusterSize);
    return copy;
  }

  private setL1Entry(l1i: number, host: number): void {
    setL1(this.l1, l1i, host);
    this.l1Dirty.add(Math.floor((l1i * 8) / 512));
  }

  /** Changes one cluster's L2 entry (exclusive lock held); what it pointed at is released later. */
  private async setMapping(c: number, nm: Mapping): Promise<void> {
    const l1i = Math.floor(c / this.l2Entries);
    const t = (await this.l2Table(l1i, true))!;
    const i = c % this.l2Entries;
    const old = decodeL2(t, i, this.header.clusterBits, this.header.version);
    const [hi, lo] =
      nm.kind === 'compressed'
        ? encodeCompressedL2(nm.start, nm.end - nm.start, this.header.clusterBits)
        : encodeL2(nm);
    writeWord(t, i, hi, lo);
    this.l2.get(l1i)!.dirty = true;
    const keepHost = (nm.kind === 'data' || nm.kind === 'zero') && nm.host;
    if ((old.kind === 'data' || old.kind === 'zero') && old.host && old.host !== keepHost) {
      this.pendingFree.push(old.host / this.clusterSize);
    } else if (old.kind === 'compressed') {
      const cs = this.clusterSize;
      for (let k = Math.floor(old.start / cs); k <= Math.floor((old.end - 1) / cs); k++) {
        this.pendingFree.push(k);
      }
    }
  }

  private async maybeWriteback(): Promise<void> {
    if (this.l2.dirtyCount > this.l2.capacity / 2 || this.pendingFree.length > 4096) {
      await this.writeback();
    }
  }

  /** The ordered metadata write-back (see the file comment). Exclusive lock held. */
  private async writeback(): Promise<void> {
    if (!this.refs) return;
    const tables = this.l2.dirtyTables();
    const l1 = [...this.l1Dirty].sort((a, b) => a - b);
    if (tables.length === 0 && l1.length === 0) {
      if (await this.refs.writeDirty()) this.unsynced = true;
      return;
    }
    await this.refs.writeDirty();
    await this.file.sync();
    for (const [l1i, t] of tables) {
      const off = l1Offset(this.l1, l1i, this.clusterSize);
      await this.file.writev(off, [t.table]);
      t.dirty = false;
    }
    if (l1.length > 0) {
      await this.file.sync();
      this.l1Dirty.clear();
      for (const s of l1) {
        const from = s * 512;
        const to = Math.min(from + 512, this.l1.length);
        await this.file.writev(this.header.l1Offset + from, [this.l1.subarray(from, to)]);
      }
    }
    await this.file.sync();
    this.unsynced = false;
    // Nothing on disk points at these any more: release them.
    const free = this.pendingFree;
    this.pendingFree = [];
    // A freed cluster may be handed out as data: compressed bytes never go on after this.
    if (free.length > 0) this.compressedTail = undefined;
    for (const k of free) await this.refs.decrement(k);
    if (await this.refs.writeDirty()) this.unsynced = true;
    this.l2.trim();
  }

  private async flushLocked(): Promise<void> {
    await this.writeback();
    if (this.unsynced) {
      await this.file.sync();
      this.unsynced = false;
    }
  }

  /** Validates, refuses writes when read-only, maps errors to BlockErrors naming the file. */
  private async run(
    what: string,
    offset: number,
    length: number,
    writes: boolean,
    op: () => Promise<void>,
  ): Promise<void> {
    admitRequest(this, this.closed, what, offset, length, writes);
    if (this.metadataOnly && what !== 'flush') {
      throw new BlockError('unsupported', `disk image ${this.name}: opened for metadata work only`);
    }
    try {
      await op();
    } catch (e) {
      throw hostIoError(
        this.name,
        what,
        offset,
        length,
        e,
        e instanceof Qcow2CorruptError ? 'corrupt image: ' : '',
      );
    }
  }
}
