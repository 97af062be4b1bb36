/**
 * What `wasmvisor img info` and `img check` read: an image's header facts and backing chain
 * (without opening it for I/O, so a dirty image is described, not repaired), and the refcount
 * consistency check with its optional repair (QEMU's meanings: a refcount below the cluster's
 * uses is a corruption, one above a leak).
 */
import { open, realpath, stat } from 'node:fs/promises';
import { BlockError } from '../backend.js';
import {
  COMPAT_LAZY_REFCOUNTS,
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  parseHeader,
  Qcow2FormatError,
  type Qcow2Header,
} from './qcow2-header.js';
import { HostFile } from './host-file.js';
import { probeFormat, resolveBacking, type ImageFormat } from './open-image.js';
import { LuksFormatError, LUKS_SECTOR, PHDR_BYTES, parseLuksHeader } from '../luks/header.js';
import { luksInfo, type LuksInfo } from '../luks/inspect.js';
import { Qcow2CorruptError, Refcounts } from './refcounts.js';
import { rebuildRefcounts } from './repair.js';
import { listSnapshots, type SnapshotInfo } from './snapshots.js';

export interface ImageInfo {
  filename: string;
  format: ImageFormat;
  virtualSize: number;
  /** Bytes the file occupies on the host (allocated blocks). */
  actualSize: number;
  clusterSize?: number;
  /** As written in the header, and resolved against the image's directory. */
  backingFilename?: string;
  fullBackingFilename?: string;
  backingFormat?: string;
  /** qcow2 only. */
  compat?: '0.10' | '1.1';
  dirty?: boolean;
  corrupt?: boolean;
  lazyRefcounts?: boolean;
  refcountBits?: number;
  compressionType?: 'zlib' | 'zstd';
  encrypted?: boolean;
  /** The LUKS header's facts (a raw LUKS image, or qcow2 with encrypt.format=luks). */
  encrypt?: LuksInfo;
  /** Internal snapshots, oldest first. */
  snapshots?: SnapshotInfo[];
}

const fail = (path: string, msg: string): never => {
  throw new BlockError('io', `disk image ${path}: ${msg}`);
};

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'no such file';
  if (err.code === 'EACCES' || err.code === 'EPERM') return 'permission denied';
  if (err.code === 'EISDIR') return 'is a directory, not a disk image';
  return err.message;
}

async function snapshotsOf(path: string, h: Qcow2Header): Promise<SnapshotInfo[]> {
  if (h.nbSnapshots === 0) return [];
  // Inspection, like `qemu-img info -U`: no locks, so a running VM's disk can be listed.
  const file = await HostFile.open(path, true, 'writeback', false).catch((e: unknown) =>
    fail(path, errnoText(e)),
  );
  try {
    return await listSnapshots({ file, header: h });
  } catch (e) {
    if (e instanceof Qcow2FormatError || e instanceof Qcow2CorruptError) fail(path, e.message);
    throw e;
  } finally {
    await file.close();
  }
}

async function readHeader(path: string): Promise<{ h: Qcow2Header; fileSize: number }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    return fail(path, errnoText(e));
  }
  try {
    const st = await fh.stat();
    const head = new Uint8Array(Math.min(st.size, 2 * 1024 * 1024));
    await fh.read(head, 0, head.length, 0);
    try {
      return { h: parseHeader(head, st.size), fileSize: st.size };
    } catch (e) {
      if (e instanceof Qcow2FormatError) fail(path, e.message);
      throw e;
    }
  } finally {
    await fh.close();
  }
}

/** One image's facts; `format` undefined probes by magic (info is a read of the user's files). */
export async function imageInfo(path: string, format?: ImageFormat): Promise<ImageInfo> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    return fail(path, errnoText(e));
  }
  if (st.isDirectory()) fail(path, 'is a directory, not a disk image');
  const fmt = format ?? (await probeFormat(path));
  const actualSize = st.blocks * 512;
  if (fmt === 'raw') return { filename: path, format: 'raw', virtualSize: st.size, actualSize };
  if (fmt === 'luks') {
    const encrypt = await readLuksInfo(path, 0, st.size);
    const virtualSize = Math.max(0, st.size - encrypt.payloadOffset);
    return { filename: path, format: 'luks', virtualSize, actualSize, encrypted: true, encrypt };
  }
  const { h } = await readHeader(path);
  const info: ImageInfo = {
    filename: path,
    format: 'qcow2',
    virtualSize: h.size,
    actualSize,
    clusterSize: 2 ** h.clusterBits,
    compat: h.version === 2 ? '0.10' : '1.1',
    dirty: (h.incompatible & INCOMPAT_DIRTY) !== 0n,
    corrupt: (h.incompatible & INCOMPAT_CORRUPT) !== 0n,
    lazyRefcounts: (h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0n,
    refcountBits: 2 ** h.refcountOrder,
    compressionType: h.compressionType === 1 ? 'zstd' : 'zlib',
    encrypted: h.cryptMethod !== 0,
    snapshots: await snapshotsOf(path, h),
  };
  if (h.backingFile) {
    info.backingFilename = h.backingFile;
    info.fullBackingFilename = resolveBacking(path, h.backingFile);
    if (h.backingFormat) info.backingFormat = h.backingFormat;
  }
  if (h.cryptoHeader) {
    info.encrypt = await readLuksInfo(path, h.cryptoHeader.offset, h.cryptoHeader.length);
  }
  return info;
}

/** The LUKS header at `offset` of the file, owning `regionBytes` (no key needed to read it). */
async function readLuksInfo(path: string, offset: number, regionBytes: number): Promise<LuksInfo> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    return fail(path, errnoText(e));
  }
  try {
    const b = new Uint8Array(Math.ceil(PHDR_BYTES / LUKS_SECTOR) * LUKS_SECTOR);
    await fh.read(b, 0, b.length, offset);
    return luksInfo(parseLuksHeader(b, regionBytes));
  } catch (e) {
    if (e instanceof LuksFormatError) fail(path, `LUKS: ${e.message}`);
    throw e;
  } finally {
    await fh.close();
  }
}

/** The image and every backing file below it, top first; a loop or missing file is an error. */
export async function backingChain(path: string, format?: ImageFormat): Promise<ImageInfo[]> {
  const chain: ImageInfo[] = [];
  const seen = new Set<string>();
  let p: string | undefined = path;
  let fmt = format;
  while (p !== undefined) {
    let real: string;
    try {
      real = await realpath(p);
    } catch {
      const by = chain.length ? ` (backing file of ${chain[chain.length - 1].filename})` : '';
      return fail(`${p}${by}`, 'no such file');
    }
    if (seen.has(real)) fail(chain[chain.length - 1].filename, `backing chain loops back to ${p}`);
    seen.add(real);
    const info = await imageInfo(p, fmt);
    chain.push(info);
    p = info.fullBackingFilename;
    const bf = info.backingFormat;
    if (bf !== undefined && bf !== 'raw' && bf !== 'qcow2' && bf !== 'luks') {
      fail(info.filename, `backing file ${info.backingFilename} has format "${bf}", not supported`);
    }
    fmt = bf as ImageFormat | undefined;
  }
  return chain;
}

export interface CheckResult {
  /** Clusters whose refcount is below their uses (left after a repair). */
  corruptions: number;
  /** Clusters whose refcount is above their uses (left after a repair). */
  leaks: number;
  /** What the first pass found, and what the repair changed. */
  found: { corruptions: number; leaks: number };
  fixed: number;
  messages: string[];
  /** Clusters the tables reference (metadata and data). */
  usedClusters: number;
  imageEndOffset: number;
  dirty: boolean;
  corrupt: boolean;
}

/**
 * Checks a qcow2 image's refcounts against the tables that use clusters; `repair` rewrites the
 * refcount blocks ('leaks': only leaked clusters) and, when nothing is left, clears the dirty and
 * corrupt bits. Throws a BlockError naming the file if the image cannot be read at all.
 */
export async function checkQcow2(path: string, repair?: 'leaks' | 'all'): Promise<CheckResult> {
  let file: HostFile;
  try {
    file = await HostFile.open(path, repair === undefined, 'writeback');
  } catch (e) {
    return fail(path, errnoText(e));
  }
  try {
    const { h } = await readHeader(path);
    const cs = 2 ** h.clusterBits;
    const l1 = await file.read(h.l1Offset, h.l1Size * 8);
    const refs = await Refcounts.load(
      file,
      h.clusterBits,
      h.refcountOrder,
      h.refcountTableOffset,
      h.refcountTableClusters,
      () => Promise.reject(new Qcow2CorruptError('the refcount table would have to grow')),
    );
    const first = await rebuildRefcounts(
      file,
      h,
      l1,
      refs,
      repair === 'all' ? true : (repair ?? false),
    );
    let r = first;
    if (repair !== undefined && first.fixed > 0) {
      await refs.writeDirty();
      await file.sync();
      r = await rebuildRefcounts(file, h, l1, refs, false);
    }
    let flags = h.incompatible;
    if (repair !== undefined && r.corruptions === 0 && r.leaks === 0) {
      flags &= ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT);
      if (flags !== h.incompatible) {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setBigUint64(0, flags);
        await file.writev(72, [b]);
        await file.sync();
      }
    }
    return {
      corruptions: r.corruptions,
      leaks: r.leaks,
      found: { corruptions: first.corruptions, leaks: first.leaks },
      fixed: first.fixed,
      messages: [...first.messages, ...(r === first ? [] : r.messages)],
      usedClusters: r.used,
      imageEndOffset: Math.ceil(file.size / cs) * cs,
      dirty: (flags & INCOMPAT_DIRTY) !== 0n,
      corrupt: (flags & INCOMPAT_CORRUPT) !== 0n,
    };
  } catch (e) {
    if (e instanceof BlockError) throw e;
    if (e instanceof Qcow2CorruptError || e instanceof Qcow2FormatError) fail(path, e.message);
    return fail(path, (e as Error).message);
  } finally {
    await file.close();
  }
}
