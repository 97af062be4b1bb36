/**
 * virtio-blk (virtio 1.2 §5.2) on a BlockBackend. Requests are taken from the queue when the
 * driver notifies, run asynchronously on the back end with at most `maxInFlight` outstanding,
 * and complete in whatever order the back end finishes them; completions that arrive in the
 * same event-loop turn are published together with one interrupt.
 *
 * Data moves between the back end and guest RAM through views of the core's memory: no copy.
 * A malformed request (no header, no status byte) is a protocol violation (NEEDS_RESET, like
 * QEMU's "virtio-blk missing headers"); a well-formed request the device cannot do gets
 * VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP. Nothing the guest writes can throw past here.
 */
import { BlockError, isVectored, type BlockBackend } from '../../block/backend.js';
import { DEVICE_ID, bit } from '../constants.js';
import { readLE, type VirtioContext, type VirtioDevice } from '../device.js';
import type { DescriptorChain } from '../ring.js';
import type { Virtqueue } from '../queue.js';

/** Feature bits (§5.2.3). */
export const BLK_F = {
  sizeMax: 1,
  segMax: 2,
  ro: 5,
  blkSize: 6,
  flush: 9,
  discard: 13,
  writeZeroes: 14,
} as const;

/** Request types and status values (§5.2.6). */
export const BLK_T = { in: 0, out: 1, flush: 4, getId: 8, discard: 11, writeZeroes: 13 } as const;
export const BLK_S = { ok: 0, ioerr: 1, unsupp: 2 } as const;

const SECTOR = 512;
const HEADER = 16;
const ID_BYTES = 20;
/** Largest single segment the guest may build (config size_max). */
const SIZE_MAX = 1 << 20;
/** Per-request limits for discard / write-zeroes, in sectors and ranges. */
const MAX_DISCARD_SECTORS = 0x3f_ffff;
const MAX_DISCARD_SEG = 32;
/** Discard granularity (sectors): the host punches holes in 4 KiB pages. */
const DISCARD_ALIGNMENT = 8;

export interface VirtioBlkOptions {
  backend: BlockBackend;
  name?: string;
  /** GET_ID answer (at most 20 bytes). */
  serial?: string;
  queueSize?: number;
  /** Requests outstanding on the back end at most (the device's queue depth). */
  maxInFlight?: number;
}

export interface VirtioBlkState {
  version: 1;
}

export interface VirtioBlkMetrics {
  [name: string]: number;
  requests: number;
  reads: number;
  writes: number;
  read_bytes: number;
  write_bytes: number;
  flushes: number;
  discards: number;
  write_zeroes: number;
  get_id: number;
  /** Requests answered VIRTIO_BLK_S_IOERR (bad sector range, back-end failure, read-only). */
  io_errors: number;
  /** Requests answered VIRTIO_BLK_S_UNSUPP (unknown type, bad flags). */
  unsupported: number;
  /** Malformed requests (protocol violations: NEEDS_RESET). */
  malformed: number;
  in_flight: number;
  max_in_flight: number;
  /** Completions published, and the batches (interrupt decisions) they went out in. */
  completions: number;
  batches: number;
  /** Kicks of a polling driver that ended its run slice to let host I/O complete (notify). */
  polled_kicks: number;
}

/** The parts of a request, all views of guest RAM. */
interface Request {
  head: number;
  type: number;
  sector: number;
  /** Data buffers after the header (readable for OUT/DISCARD/WRITE_ZEROES, writable for IN/GET_ID). */
  data: Uint8Array[];
  dataLen: number;
  status: Uint8Array;
  /** Bytes the device writes into the chain on success (used.len). */
  writable: number;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = DEVICE_ID.blk;
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly name: string;
  readonly metrics: VirtioBlkMetrics = {
    requests: 0,
    reads: 0,
    writes: 0,
    read_bytes: 0,
    write_bytes: 0,
    flushes: 0,
    discards: 0,
    write_zeroes: 0,
    get_id: 0,
    io_errors: 0,
    unsupported: 0,
    malformed: 0,
    in_flight: 0,
    max_in_flight: 0,
    completions: 0,
    batches: 0,
    polled_kicks: 0,
  };
  onConfigChange?: () => void;

  readonly backend: BlockBackend;
  private readonly config: Uint8Array;
  private readonly serial: Uint8Array;
  private readonly maxInFlight: number;
  private ctx: VirtioContext | undefined;
  /** Bumped by reset(): completions of requests started before it are dropped. */
  private generation = 0;
  private publishScheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(o: VirtioBlkOptions) {
    this.backend = o.backend;
    this.name = o.name ?? 'virtio-blk0';
    const qsize = o.queueSize ?? 256;
    this.queueMaxSizes = [qsize];
    this.maxInFlight = o.maxInFlight ?? 64;
    let f =
      bit(BLK_F.sizeMax) |
      bit(BLK_F.segMax) |
      bit(BLK_F.blkSize) |
      bit(BLK_F.flush) |
      bit(BLK_F.discard) |
      bit(BLK_F.writeZeroes);
    if (o.backend.readOnly) f |= bit(BLK_F.ro);
    this.features = f;
    this.serial = new TextEncoder().encode(o.serial ?? this.name).subarray(0, ID_BYTES);

    // struct virtio_blk_config, little-endian.
    const c = new Uint8Array(64);
    const dv = new DataView(c.buffer);
    dv.setBigUint64(0, BigInt(Math.floor(o.backend.size / SECTOR)), true); // capacity
    dv.setUint32(8, SIZE_MAX, true); // size_max
    dv.setUint32(12, qsize - 2, true); // seg_max (header and status take two descriptors)
    dv.setUint32(20, SECTOR, true); // blk_size
    dv.setUint16(34, 1, true); // num_queues
    dv.setUint32(36, MAX_DISCARD_SECTORS, true);
    dv.setUint32(40, MAX_DISCARD_SEG, true);
    dv.setUint32(44, DISCARD_ALIGNMENT, true);
    dv.setUint32(48, MAX_DISCARD_SECTORS, true); // max_write_zeroes_sectors
    dv.setUint32(52, MAX_DISCARD_SEG, true); // max_write_zeroes_seg
    c[56] = 1; // write_zeroes_may_unmap
    this.config = c;
  }

  readConfig(offset: number, size: number): number {
    return readLE(this.config, offset, size);
  }
  writeConfig(): void {
    // Only `writeback` is writable, and CONFIG_WCE is not offered.
  }

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  /**
   * A driver that polls (the queue's interrupts off without EVENT_IDX: U-Boot's, and GRUB's and
   * Linux's EFI stub through it) spins on the used ring until its request is back. Its slice
   * ends at the kick, so the request completes after one event-loop turn (a read the host's
   * page cache holds at once) rather than after the rest of the slice, and its completion is
   * published as soon as it is done (there is no interrupt to batch).
   */
  notify(): void {
    this.kick();
    const q = this.ctx?.queues[0];
    if (q && this.metrics.in_flight > 0 && q.polled) {
      this.metrics.polled_kicks++;
      q.endGuestSlice();
    }
  }

  /** Takes requests while the queue depth allows. */
  private kick(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const q = ctx.queues[0];
    while (this.metrics.in_flight < this.maxInFlight) {
      const c = q.pop();
      if (!c) break;
      const req = this.parse(c);
      if (!req) {
        this.metrics.malformed++;
        ctx.fail(`${this.name}: request ${c.head} has no header or no status byte`);
        return;
      }
      this.metrics.requests++;
      this.metrics.in_flight++;
      if (this.metrics.in_flight > this.metrics.max_in_flight) {
        this.metrics.max_in_flight = this.metrics.in_flight;
      }
      const gen = this.generation;
      this.execute(req).then(
        (status) => this.complete(q, req, status, gen),
        () => this.complete(q, req, BLK_S.ioerr, gen),
      );
    }
  }

  /** Splits a chain into header, data and status; undefined when it is malformed. */
  private parse(c: DescriptorChain): Request | undefined {
    if (c.readable < HEADER || c.writable < 1) return undefined;
    const segs = c.segments;
    // Header: the first 16 readable bytes, usually one descriptor of its own.
    let hdr = segs[0].view;
    if (hdr.length < HEADER) {
      hdr = new Uint8Array(HEADER);
      let n = 0;
      for (const s of segs) {
        const take = Math.min(HEADER - n, s.view.length);
        hdr.set(s.view.subarray(0, take), n);
        n += take;
        if (n === HEADER) break;
      }
    }
    const hv = new DataView(hdr.buffer, hdr.byteOffset, HEADER);
    const type = hv.getUint32(0, true);
    const sector = hv.getUint32(8, true) + hv.getUint32(12, true) * 0x1_0000_0000;
    // The status byte: the last byte of the last (writable) segment.
    const last = segs[segs.length - 1].view;
    const status = last.subarray(last.length - 1);
    const data: Uint8Array[] = [];
    let dataLen = 0;
    const wantWritable = type === BLK_T.in || type === BLK_T.getId;
    let skip = HEADER;
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i];
      let v = s.view;
      if (!s.writable) {
        if (skip) {
          const k = Math.min(skip, v.length);
          skip -= k;
          v = v.subarray(k);
        }
        if (wantWritable || !v.length) continue;
      } else {
        if (!wantWritable) continue;
        if (i === segs.length - 1) v = v.subarray(0, v.length - 1);
        if (!v.length) continue;
      }
      data.push(v);
      dataLen += v.length;
    }
    return { head: c.head, type, sector, data, dataLen, status, writable: c.writable };
  }

  private async execute(r: Request): Promise<number> {
    const b = this.backend;
    const m = this.metrics;
    try {
      switch (r.type) {
        case BLK_T.in:
        case BLK_T.out: {
          const write = r.type === BLK_T.out;
          if (write && b.readOnly) return this.ioerr();
          const off = r.sector * SECTOR;
          if (r.dataLen % SECTOR !== 0 || off + r.dataLen > b.size) return this.ioerr();
          if (write) {
            m.writes++;
            m.write_bytes += r.dataLen;
          } else {
            m.reads++;
            m.read_bytes += r.dataLen;
          }
          await this.transfer(write, off, r.data);
          return BLK_S.ok;
        }
        case BLK_T.flush:
          m.flushes++;
          await b.flush();
          return BLK_S.ok;
        case BLK_T.getId: {
          m.get_id++;
          let n = 0;
          for (const v of r.data) {
            if (n >= ID_BYTES) break;
            const part = this.serial.subarray(n, Math.min(this.serial.length, n + v.length));
            v.fill(0, 0, Math.min(v.length, ID_BYTES - n));
            v.set(part);
            n += v.length;
          }
          return BLK_S.ok;
        }
        case BLK_T.discard:
        case BLK_T.writeZeroes:
          return await this.discard(r);
        default:
          m.unsupported++;
          return BLK_S.unsupp;
      }
    } catch (e) {
      if (e instanceof BlockError && e.kind === 'unsupported') {
        m.unsupported++;
        return BLK_S.unsupp;
      }
      return this.ioerr();
    }
  }

  private ioerr(): number {
    this.metrics.io_errors++;
    return BLK_S.ioerr;
  }

  /** Reads/writes consecutive buffers at `off`: one vectored call, or one call per buffer. */
  private async transfer(write: boolean, off: number, bufs: Uint8Array[]): Promise<void> {
    const b = this.backend;
    if (bufs.length === 1) {
      await (write ? b.write(off, bufs[0]) : b.read(off, bufs[0]));
      return;
    }
    if (isVectored(b)) {
      await (write ? b.writev(off, bufs) : b.readv(off, bufs));
      return;
    }
    const ops: Promise<void>[] = [];
    for (const v of bufs) {
      ops.push(write ? b.write(off, v) : b.read(off, v));
      off += v.length;
    }
    await Promise.all(ops);
  }

  /** DISCARD / WRITE_ZEROES: a list of {sector u64, num_sectors u32, flags u32} ranges. */
  private async discard(r: Request): Promise<number> {
    const zeroes = r.type === BLK_T.writeZeroes;
    const m = this.metrics;
    if (zeroes) m.write_zeroes++;
    else m.discards++;
    if (this.backend.readOnly) return this.ioerr();
    if (r.dataLen === 0 || r.dataLen % 16 !== 0 || r.dataLen / 16 > MAX_DISCARD_SEG) {
      return this.ioerr();
    }
    // The range list is metadata (≤ 512 bytes): gather it into one buffer.
    const list = new Uint8Array(r.dataLen);
    let n = 0;
    for (const v of r.data) {
      list.set(v, n);
      n += v.length;
    }
    const dv = new DataView(list.buffer);
    const ops: Promise<void>[] = [];
    for (let o = 0; o < list.length; o += 16) {
      const sector = dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 0x1_0000_0000;
      const count = dv.getUint32(o + 8, true);
      const flags = dv.getUint32(o + 12, true);
      const unmap = (flags & 1) !== 0;
      // Unknown flags, or unmap on a discard, are not supported (§5.2.6.2).
      if (flags & ~1 || (!zeroes && unmap)) {
        m.unsupported++;
        return BLK_S.unsupp;
      }
      const off = sector * SECTOR;
      const len = count * SECTOR;
      if (count > MAX_DISCARD_SECTORS || off + len > this.backend.size) return this.ioerr();
      ops.push(zeroes ? this.backend.writeZeroes(off, len, unmap) : this.backend.discard(off, len));
    }
    await Promise.all(ops);
    return BLK_S.ok;
  }

  private complete(q: Virtqueue, r: Request, status: number, gen: number): void {
    if (gen !== this.generation) return; // the device was reset meanwhile
    this.metrics.in_flight--;
    r.status[0] = status;
    const len =
      status === BLK_S.ok && (r.type === BLK_T.in || r.type === BLK_T.getId) ? r.writable : 1;
    q.push(r.head, len);
    this.metrics.completions++;
    if (q.polled) this.publish(gen);
    else if (!this.publishScheduled) {
      this.publishScheduled = true;
      setImmediate(() => this.publish(gen));
    }
  }

  /** One publish (and at most one interrupt) for all completions of this event-loop turn. */
  private publish(gen: number): void {
    this.publishScheduled = false;
    if (gen !== this.generation || !this.ctx) return;
    this.metrics.batches++;
    this.ctx.signalUsed(this.ctx.queues[0]);
    this.kick(); // the queue depth may have held requests back
    if (this.metrics.in_flight === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Resolves when no request is outstanding (before saveState or closing the back end). */
  drain(): Promise<void> {
    if (this.metrics.in_flight === 0 && !this.publishScheduled) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  reset(): void {
    // Requests already on the back end cannot be recalled; their completions are dropped.
    this.generation++;
    this.metrics.in_flight = 0;
    this.publishScheduled = false;
    this.ctx = undefined;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Guest-visible state; call drain() first so no request is in flight. */
  saveState(): VirtioBlkState {
    if (this.metrics.in_flight) throw new Error(`${this.name}: saveState with requests in flight`);
    return { version: 1 };
  }

  restoreState(s: unknown): void {
    const st = s as VirtioBlkState;
    if (st?.version !== 1) throw new Error(`${this.name}: unsupported state`);
  }
}
