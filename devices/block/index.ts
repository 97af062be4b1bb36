/**
 * The block layer's entry point: a disk as the VM definition describes it (DiskConfig), built
 * as back end (raw file) → I/O scheduler, and handed to the device model as one BlockBackend
 * that also reports its counters and can change policy and cache mode while the guest runs.
 */
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CacheMode, DiskConfig, SchedulerPolicy } from '../../main/vm/config.js';
import { BlockError, type BlockBackend, type VectoredBlockBackend } from './backend.js';
import { RawFile, type RawFileStats } from './raw-file.js';
import { IoScheduler, type SchedulerStats } from './scheduler.js';
import { createQcow2, imageInfo, openImage, type Qcow2Image } from './qcow2/index.js';
import { LuksLayer } from './luks/luks-layer.js';
import { readKeyFile } from './luks/key-source.js';

export { BlockError, type BlockBackend, type BlockErrorKind } from './backend.js';
export type { RawFileStats } from './raw-file.js';
import type { ReadNowStats } from './read-now.js';
export type { SchedulerStats } from './scheduler.js';

export interface DiskStats extends SchedulerStats {
  path: string;
  sizeBytes: number;
  readOnly: boolean;
  cache: CacheMode;
  /** Whether discard/write-zeroes free host blocks; when false, `sparseUnavailable` says why. */
  sparse: boolean;
  sparseUnavailable?: string;
  /** fdatasync calls made on the image. */
  syncs: number;
  /** cor=on: clusters copied from the backing chain into the overlay so far. */
  corClusters?: number;
  /** Reads the host's page cache served at once, reads that went to the thread pool (read-now.ts). */
  readsAtOnce: number;
  readsQueued: number;
  readsAtOnceUnavailable?: string;
}

export interface Disk extends BlockBackend {
  /** The qcow2 image the guest writes into (the overlay under snapshot=on); none for raw. */
  readonly image?: Qcow2Image;
  stats(): DiskStats;
  setPolicy(policy: SchedulerPolicy): void;
  setCacheMode(mode: CacheMode): void;
  /**
   * Turns the image's write lock into a read lock, in place, so an overlay can open it as its
   * backing file before this disk closes (no instant unlocked). Call it once flushed and with
   * no request in flight; the disk must not be written afterwards. Returns false when this
   * format keeps its lock (LUKS, snapshot=on overlays).
   */
  releaseWriteLock(): boolean;
  close(): Promise<void>;
}

export interface OpenDiskOptions {
  log?: (msg: string) => void;
  /** Back-end calls in flight per disk (default 4). */
  inFlight?: number;
  /** Bypass the host page cache (O_DIRECT), for benchmarks; see RawFileOptions.direct. */
  direct?: boolean;
  /**
   * Where a snapshot=on disk keeps its overlay across reopenings (a VM's resets and reboots),
   * and the disk's place in the VM; without it the overlay lives as long as the disk.
   */
  overlays?: { keep: SnapshotOverlays; slot: number };
  /** The passphrase of an encrypted image, asked for on a terminal (else cfg.keyFile is read). */
  key?: Uint8Array;
}

/** What the disk needs of its format layer beyond BlockBackend: the cache mode, settable live. */
interface FormatLayer extends BlockBackend {
  setCacheMode(mode: CacheMode): void;
  /** Raw and qcow2: the write lock becomes a read lock (Disk.releaseWriteLock). */
  downgradeLock?(): void;
}
type FileCounters = Pick<RawFileStats, 'cache' | 'sparse' | 'sparseUnavailable' | 'syncs'> &
  ReadNowStats & {
    corClusters?: number;
  };

function readNowCounters(s: ReadNowStats): ReadNowStats {
  return {
    readsAtOnce: s.readsAtOnce,
    readsQueued: s.readsQueued,
    ...(s.readsAtOnceUnavailable ? { readsAtOnceUnavailable: s.readsAtOnceUnavailable } : {}),
  };
}

/** qcow2's counters in the shape DiskStats reports (freed clusters are reused, not punched). */
function qcow2Counters(img: Qcow2Image): FileCounters {
  const s = img.stats();
  return {
    cache: s.cache,
    sparse: false,
    sparseUnavailable: 'qcow2: clusters are reused',
    syncs: s.syncs,
    ...(s.corClusters > 0 ? { corClusters: s.corClusters } : {}),
    ...readNowCounters(s),
  };
}

class ScheduledDisk implements Disk {
  constructor(
    private readonly file: FormatLayer,
    private readonly counters: () => FileCounters,
    private readonly sched: IoScheduler,
    readonly image: Qcow2Image | undefined,
    /** What the user named, when the format layer is a temporary overlay over it. */
    private readonly label?: string,
  ) {}

  get name(): string {
    return this.label ?? this.file.name;
  }
  get size(): number {
    return this.file.size;
  }
  get readOnly(): boolean {
    return this.file.readOnly;
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.sched.read(offset, buf);
  }
  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.sched.write(offset, buf);
  }
  flush(): Promise<void> {
    return this.sched.flush();
  }
  discard(offset: number, length: number): Promise<void> {
    return this.sched.discard(offset, length);
  }
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    return this.sched.writeZeroes(offset, length, unmap);
  }
  setPolicy(policy: SchedulerPolicy): void {
    this.sched.setPolicy(policy);
  }
  setCacheMode(mode: CacheMode): void {
    this.file.setCacheMode(mode);
  }
  releaseWriteLock(): boolean {
    if (!this.file.downgradeLock) return false;
    this.file.downgradeLock();
    return true;
  }
  close(): Promise<void> {
    return this.sched.close();
  }
  stats(): DiskStats {
    const f = this.counters();
    return {
      ...this.sched.stats(),
      path: this.name,
      sizeBytes: this.file.size,
      readOnly: this.file.readOnly,
      cache: f.cache,
      sparse: f.sparse,
      ...(f.sparseUnavailable ? { sparseUnavailable: f.sparseUnavailable } : {}),
      syncs: f.syncs,
      ...(f.corClusters !== undefined ? { corClusters: f.corClusters } : {}),
      ...readNowCounters(f),
    };
  }
}

/**
 * Opens a disk. Errors are BlockErrors whose message names the file and the problem (missing,
 * unreadable, a directory, a size that is not a multiple of 512).
 */
export async function openDisk(cfg: DiskConfig, opts: OpenDiskOptions = {}): Promise<Disk> {
  if (cfg.format !== 'raw' && cfg.format !== 'qcow2' && cfg.format !== 'luks') {
    const what = `disk image ${cfg.path}: format "${String(cfg.format)}" is not supported`;
    throw new BlockError('unsupported', what);
  }
  // The format is what the user named: a raw image is never probed (its guest could otherwise
  // write a qcow2 header naming any host file as its backing file).
  let file: FormatLayer;
  let counters: () => FileCounters;
  const key = await diskKey(cfg, opts);
  let image: Qcow2Image | undefined;
  if (cfg.snapshot && !cfg.readOnly) {
    const img = opts.overlays
      ? await opts.overlays.keep.overlay(opts.overlays.slot, cfg, opts)
      : await openSnapshotOverlay(cfg, opts);
    file = opts.overlays ? new KeptOverlay(img) : img;
    counters = () => qcow2Counters(img);
    image = img;
  } else if (cfg.format === 'qcow2') {
    const img = await openImage(cfg.path, 'qcow2', {
      readOnly: cfg.readOnly,
      cache: cfg.cache,
      copyOnRead: cfg.cor,
      log: opts.log,
      key,
    });
    image = img as Qcow2Image;
    file = image;
    counters = () => qcow2Counters(img as Qcow2Image);
  } else {
    const raw = await RawFile.open(cfg.path, {
      readOnly: cfg.readOnly,
      cache: cfg.cache,
      direct: opts.direct,
      log: opts.log,
    });
    if (cfg.format === 'luks') {
      if (!key) {
        await raw.close();
        throw new BlockError(
          'io',
          `disk image ${cfg.path} is encrypted (LUKS): give its key (key-file=PATH)`,
        );
      }
      file = await LuksLayer.open(raw, key);
    } else file = raw;
    counters = () => raw.stats();
  }
  const s = counters();
  if (cfg.format === 'raw' && !cfg.snapshot && !s.sparse && !cfg.readOnly) {
    opts.log?.(`${cfg.path}: discard writes zeros (${s.sparseUnavailable ?? 'no hole punching'})`);
  }
  try {
    const sched = new IoScheduler(file, { policy: cfg.sched, inFlight: opts.inFlight });
    return new ScheduledDisk(file, counters, sched, image, cfg.snapshot ? cfg.path : undefined);
  } catch (e) {
    await file.close();
    throw e;
  }
}

/** The passphrase of an encrypted disk: the caller's (a prompt), else its key file's bytes. */
async function diskKey(cfg: DiskConfig, opts: OpenDiskOptions): Promise<Uint8Array | undefined> {
  if (opts.key) return opts.key;
  if (!cfg.keyFile) return undefined;
  try {
    return await readKeyFile(cfg.keyFile);
  } catch (e) {
    throw new BlockError('io', `disk image ${cfg.path}: ${(e as Error).message}`);
  }
}

/**
 * snapshot=on (QEMU's -snapshot): a qcow2 overlay in $TMPDIR (else /var/tmp, as QEMU: an overlay
 * can grow large) whose backing file is the user's image, named by absolute path with the
 * format the user gave (never probed). The overlay's name is unlinked as soon as it is open, so
 * it is gone at exit however the process ends; the image is only ever opened read-only. Syncs
 * on the overlay are skipped (cache=unsafe): its data is thrown away anyway.
 */
async function openSnapshotOverlay(cfg: DiskConfig, opts: OpenDiskOptions): Promise<Qcow2Image> {
  let base: string;
  try {
    base = await realpath(cfg.path);
  } catch {
    throw new BlockError('io', `disk image ${cfg.path}: no such file`);
  }
  const parent = process.env.TMPDIR ?? (process.platform === 'win32' ? tmpdir() : '/var/tmp');
  let dir: string;
  try {
    dir = await mkdtemp(join(parent, 'wasmvisor-snapshot-'));
  } catch (e) {
    const why = (e as Error).message;
    throw new BlockError(
      'io',
      `disk image ${cfg.path}: snapshot=on: no temporary overlay (${why})`,
    );
  }
  try {
    const overlay = join(dir, 'overlay.qcow2');
    // The size from the image's header: opening an encrypted one here would need its key.
    const size = (await imageInfo(base, cfg.format)).virtualSize;
    await createQcow2(overlay, { backingFile: base, backingFormat: cfg.format, size });
    const img = await openImage(overlay, 'qcow2', {
      cache: 'unsafe',
      copyOnRead: cfg.cor,
      log: opts.log,
      backingKey: await diskKey(cfg, opts),
    });
    return img as Qcow2Image;
  } finally {
    // (Windows cannot unlink an open file: there the directory is left behind.)
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * The snapshot=on overlays of one VM, kept from one opening of its disks to the next — QEMU
 * keeps -snapshot's overlay until it exits, so a guest reboot or a reset does not lose what the
 * guest wrote. close() throws them all away (the VM has ended).
 */
export class SnapshotOverlays {
  private readonly kept = new Map<number, { key: string; img: Promise<Qcow2Image> }>();

  /** The overlay of the disk in `slot`: the one kept, unless that slot now names another image. */
  async overlay(slot: number, cfg: DiskConfig, opts: OpenDiskOptions): Promise<Qcow2Image> {
    const key = `${cfg.format}:${cfg.path}`;
    const k = this.kept.get(slot);
    if (k && k.key === key) return k.img;
    if (k) await (await k.img.catch(() => undefined))?.close();
    const img = openSnapshotOverlay(cfg, opts);
    this.kept.set(slot, { key, img });
    img.catch(() => this.kept.delete(slot));
    return img;
  }

  async close(): Promise<void> {
    const all = [...this.kept.values()];
    this.kept.clear();
    await Promise.allSettled(all.map(async (k) => (await k.img).close()));
  }
}

/** A kept overlay as one opening of the disk sees it: closing it only writes its metadata back. */
class KeptOverlay implements FormatLayer, VectoredBlockBackend {
  constructor(private readonly img: Qcow2Image) {}
  get name(): string {
    return this.img.name;
  }
  get size(): number {
    return this.img.size;
  }
  get readOnly(): boolean {
    return this.img.readOnly;
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.img.read(offset, buf);
  }
  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.img.write(offset, buf);
  }
  readv(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    return this.img.readv(offset, bufs);
  }
  writev(offset: number, bufs: readonly Uint8Array[]): Promise<void> {
    return this.img.writev(offset, bufs);
  }
  flush(): Promise<void> {
    return this.img.flush();
  }
  discard(offset: number, length: number): Promise<void> {
    return this.img.discard(offset, length);
  }
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    return this.img.writeZeroes(offset, length, unmap);
  }
  setCacheMode(mode: CacheMode): void {
    this.img.setCacheMode(mode);
  }
  close(): Promise<void> {
    return this.img.flush();
  }
}
