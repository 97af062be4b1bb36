/**
 * A mock virtio driver for unit tests, in the spirit of rust-vmm's virtio-queue mock: it lays
 * out split or packed rings in a real core's guest RAM, negotiates through the virtio-mmio
 * registers like Linux's virtio_mmio.c, posts descriptor chains (direct or indirect) and reads
 * the used buffers back, so a test reads like a driver talking to a device.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { Core } from '../../../main/vm/core.js';
import { RingProcessor } from '../../../devices/virtio/ring.js';
import { VirtioMmioTransport } from '../../../devices/virtio/mmio-transport.js';
import { MMIO, STATUS, F } from '../../../devices/virtio/constants.js';
import type { VirtioDevice } from '../../../devices/virtio/device.js';
import { FakeLine, logSink } from '../platform/helpers.js';

export const RAM_BASE = 0x8000_0000;
export const RAM_SIZE = 16 * 1024 * 1024;

const DESC_F_NEXT = 1;
const DESC_F_WRITE = 2;
const DESC_F_INDIRECT = 4;
/** Packed rings: the wrap-counter flags of a descriptor. */
export const DESC_F_AVAIL = 1 << 7;
export const DESC_F_USED = 1 << 15;
/** Packed rings: event suppression flags. */
export const EVENT_ENABLE = 0;
export const EVENT_DISABLE = 1;
export const EVENT_DESC = 2;

let sharedCore: Core | undefined;

/** A core with 16 MiB of RAM and no devices behind its MMIO hook (shared: instantiation is slow). */
export function testCore(): Core {
  sharedCore ??= new Core(RAM_BASE, RAM_SIZE, {
    mmioRead: () => 0,
    mmioWrite: () => {},
    hostTicks: () => 0,
  });
  sharedCore.ram.fill(0);
  return sharedCore;
}

/** Guest memory as a driver sees it: physical addresses, a bump allocator, LE accessors. */
export class GuestMemory {
  readonly dv: DataView;
  private next: number;

  constructor(readonly core: Core) {
    this.dv = new DataView(core.ram.buffer, core.ram.byteOffset, core.ram.byteLength);
    this.next = RAM_BASE + 0x10_0000;
  }

  alloc(len: number, align = 16): number {
    this.next = Math.ceil(this.next / align) * align;
    const a = this.next;
    this.next += len;
    if (this.next > RAM_BASE + RAM_SIZE) throw new Error('test guest memory exhausted');
    return a;
  }
  off(addr: number): number {
    return addr - RAM_BASE;
  }
  u8(a: number): number {
    return this.dv.getUint8(this.off(a));
  }
  u16(a: number): number {
    return this.dv.getUint16(this.off(a), true);
  }
  u32(a: number): number {
    return this.dv.getUint32(this.off(a), true);
  }
  setU8(a: number, v: number): void {
    this.dv.setUint8(this.off(a), v);
  }
  setU16(a: number, v: number): void {
    this.dv.setUint16(this.off(a), v, true);
  }
  setU32(a: number, v: number): void {
    this.dv.setUint32(this.off(a), v, true);
  }
  setU64(a: number, v: number): void {
    this.dv.setBigUint64(this.off(a), BigInt(v), true);
  }
  write(a: number, bytes: Uint8Array): void {
    this.core.ram.set(bytes, this.off(a));
  }
  read(a: number, len: number): Uint8Array {
    return this.core.ram.slice(this.off(a), this.off(a) + len);
  }
  /** Allocates a buffer holding `bytes`. */
  put(bytes: Uint8Array, align = 16): number {
    const a = this.alloc(bytes.length, align);
    this.write(a, bytes);
    return a;
  }
}

/** A buffer in a chain: guest address, length, and whether the device may write it. */
export interface Buf {
  addr: number;
  len: number;
  write?: boolean;
}

export interface UsedElem {
  id: number;
  len: number;
}

/** What device tests need of a driver's queue, whichever the ring layout. */
export interface DriverRing {
  readonly index: number;
  readonly size: number;
  /** The three areas the transport is told: descriptors, driver area, device area. */
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  readonly packed: boolean;
  /** Adds a chain of direct descriptors; returns the id the device will hand back. */
  add(bufs: Buf[]): number;
  /** Adds a chain through one indirect table; returns its id. */
  addIndirect(bufs: Buf[]): number;
  /** Used buffers the device returned since the last call. */
  takeUsed(): UsedElem[];
}

/** The driver's side of one split virtqueue. */
export class DriverQueue implements DriverRing {
  readonly packed = false;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  availIdx = 0;
  lastUsed = 0;
  private freeHead = 0;

  constructor(
    readonly mem: GuestMemory,
    readonly index: number,
    readonly size: number,
  ) {
    this.desc = mem.alloc(16 * size, 16);
    this.avail = mem.alloc(6 + 2 * size, 2);
    this.used = mem.alloc(6 + 8 * size, 4);
  }

  writeDesc(table: number, i: number, b: Buf, flags: number, next: number): void {
    const d = table + 16 * i;
    this.mem.setU64(d, b.addr);
    this.mem.setU32(d + 8, b.len);
    this.mem.setU16(d + 12, flags | (b.write ? DESC_F_WRITE : 0));
    this.mem.setU16(d + 14, next);
  }

  /** Descriptor slots are used round-robin; tests keep fewer chains in flight than fit. */
  private take(n: number): number[] {
    const ids: number[] = [];
    for (let i = 0; i < n; i++) ids.push((this.freeHead + i) % this.size);
    this.freeHead = (this.freeHead + n) % this.size;
    return ids;
  }

  /** Publishes a chain head in the available ring. */
  publishHead(head: number): void {
    this.mem.setU16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.mem.setU16(this.avail + 2, this.availIdx);
  }

  /** Adds a chain of direct descriptors; returns its head id. */
  add(bufs: Buf[]): number {
    const ids = this.take(bufs.length);
    bufs.forEach((b, i) => {
      const last = i === bufs.length - 1;
      this.writeDesc(this.desc, ids[i], b, last ? 0 : DESC_F_NEXT, last ? 0 : ids[i + 1]);
    });
    this.publishHead(ids[0]);
    return ids[0];
  }

  /** Adds a chain through one indirect table; returns its head id. */
  addIndirect(bufs: Buf[]): number {
    const table = this.mem.alloc(16 * bufs.length, 16);
    bufs.forEach((b, i) => {
      const last = i === bufs.length - 1;
      this.writeDesc(table, i, b, last ? 0 : DESC_F_NEXT, last ? 0 : i + 1);
    });
    const [head] = this.take(1);
    this.writeDesc(this.desc, head, { addr: table, len: 16 * bufs.length }, DESC_F_INDIRECT, 0);
    this.publishHead(head);
    return head;
  }

  /** Used elements the device added since the last call. */
  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = this.mem.u16(this.used + 2);
    while (this.lastUsed !== idx) {
      const e = this.used + 4 + 8 * (this.lastUsed % this.size);
      out.push({ id: this.mem.u32(e), len: this.mem.u32(e + 4) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** EVENT_IDX: interrupt me only once used.idx passes `idx` (used_event). */
  setUsedEvent(idx: number): void {
    this.mem.setU16(this.avail + 4 + 2 * this.size, idx);
  }
  /** The device's avail_event (EVENT_IDX). */
  get availEvent(): number {
    return this.mem.u16(this.used + 4 + 8 * this.size);
  }
  setNoInterrupt(on: boolean): void {
    this.mem.setU16(this.avail, on ? 1 : 0);
  }
}

/**
 * The driver's side of one packed virtqueue (virtio 1.2 §2.8), as Linux's virtio_ring.c keeps
 * it: the next descriptor to make available and the next to read back, each with its wrap
 * counter (starting at 1), and per buffer id the number of descriptors its chain took.
 */
export class PackedDriverQueue implements DriverRing {
  readonly packed = true;
  readonly desc: number;
  /** Driver Event Suppression (the driver area) and Device Event Suppression (device area). */
  readonly avail: number;
  readonly used: number;
  nextAvail = 0;
  availWrap = 1;
  nextUsed = 0;
  usedWrap = 1;
  private readonly chainLen: number[];
  private readonly free: number[];

  constructor(
    readonly mem: GuestMemory,
    readonly index: number,
    readonly size: number,
  ) {
    this.desc = mem.alloc(16 * size, 16);
    this.avail = mem.alloc(4, 4);
    this.used = mem.alloc(4, 4);
    this.chainLen = new Array<number>(size).fill(0);
    this.free = Array.from({ length: size }, (_, i) => i);
  }

  /** Flags marking a descriptor available in the driver's current lap. */
  private availFlags(): number {
    return this.availWrap ? DESC_F_AVAIL : DESC_F_USED;
  }

  /** Writes descriptor `pos` of the ring (flags last, as a driver must). */
  writeDesc(pos: number, addr: number, len: number, id: number, flags: number): void {
    const d = this.desc + 16 * pos;
    this.mem.setU64(d, addr);
    this.mem.setU32(d + 8, len);
    this.mem.setU16(d + 12, id);
    this.mem.setU16(d + 14, flags);
  }

  private step(): void {
    if (++this.nextAvail === this.size) {
      this.nextAvail = 0;
      this.availWrap ^= 1;
    }
  }

  /**
   * Makes a chain available: its descriptors in consecutive positions, the buffer id in the
   * last, the first one's flags written last of all. `id` picks the buffer id (tests of hostile
   * drivers); by default the next free one.
   */
  addDescs(descs: { addr: number; len: number; flags: number }[], id?: number): number {
    const bid = id ?? this.free.shift();
    if (bid === undefined) throw new Error('packed test queue: no free buffer id');
    const first = this.nextAvail;
    let firstFlags = 0;
    descs.forEach((x, i) => {
      const last = i === descs.length - 1;
      const f = x.flags | this.availFlags() | (last ? 0 : DESC_F_NEXT);
      if (i === 0) {
        firstFlags = f;
        this.writeDesc(this.nextAvail, x.addr, x.len, last ? bid : 0, 0);
        // The first descriptor's flags must not look available yet: the lap's opposite.
        this.mem.setU16(this.desc + 16 * this.nextAvail + 14, f ^ (DESC_F_AVAIL | DESC_F_USED));
      } else {
        this.writeDesc(this.nextAvail, x.addr, x.len, last ? bid : 0, f);
      }
      this.step();
    });
    this.mem.setU16(this.desc + 16 * first + 14, firstFlags);
    if (bid < this.size) this.chainLen[bid] = descs.length;
    return bid;
  }

  add(bufs: Buf[]): number {
    return this.addDescs(
      bufs.map((b) => ({ addr: b.addr, len: b.len, flags: b.write ? DESC_F_WRITE : 0 })),
    );
  }

  addIndirect(bufs: Buf[]): number {
    const table = this.mem.alloc(16 * bufs.length, 16);
    bufs.forEach((b, i) => {
      const e = table + 16 * i;
      this.mem.setU64(e, b.addr);
      this.mem.setU32(e + 8, b.len);
      this.mem.setU16(e + 12, 0);
      this.mem.setU16(e + 14, b.write ? DESC_F_WRITE : 0);
    });
    return this.addDescs([{ addr: table, len: 16 * bufs.length, flags: DESC_F_INDIRECT }]);
  }

  /** Reads used descriptors at the next used position while their USED bit matches the lap. */
  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    for (;;) {
      const d = this.desc + 16 * this.nextUsed;
      const flags = this.mem.u16(d + 14);
      const used = (flags & DESC_F_USED) !== 0;
      const avail = (flags & DESC_F_AVAIL) !== 0;
      if (used !== (this.usedWrap === 1) || avail !== used) break;
      const id = this.mem.u16(d + 12);
      const n = this.chainLen[id] ?? 0;
      if (n === 0) throw new Error(`packed test queue: used buffer id ${id} was not in flight`);
      out.push({ id, len: this.mem.u32(d + 8) });
      this.chainLen[id] = 0;
      this.free.push(id);
      this.nextUsed += n;
      if (this.nextUsed >= this.size) {
        this.nextUsed -= this.size;
        this.usedWrap ^= 1;
      }
    }
    return out;
  }

  /** Driver Event Suppression: enable, disable, or (EVENT_IDX) a descriptor position. */
  setDriverEvent(flags: number, pos = 0, wrap = 1): void {
    this.mem.setU16(this.avail, pos | (wrap << 15));
    this.mem.setU16(this.avail + 2, flags);
  }
  /** Device Event Suppression as the device wrote it. */
  get deviceEvent(): { flags: number; pos: number; wrap: number } {
    const ow = this.mem.u16(this.used);
    return { flags: this.mem.u16(this.used + 2) & 3, pos: ow & 0x7fff, wrap: ow >> 15 };
  }
}

export interface DriverOptions {
  /** Features to accept (default: everything offered). */
  accept?: (offered: bigint) => bigint;
  queueSizes?: number[];
}

/** A device behind a virtio-mmio transport, driven through its registers. */
export class MockDriver {
  readonly core: Core;
  readonly mem: GuestMemory;
  readonly rings: RingProcessor;
  readonly transport: VirtioMmioTransport;
  readonly irq = new FakeLine();
  readonly log = logSink();
  queues: DriverRing[] = [];

  /**
   * Whether new mock drivers' transports offer packed rings (VIRTIO_F_RING_PACKED), for test
   * files that run every case over both layouts; a driver lays its queues out packed when it
   * accepts the feature.
   */
  static offerPacked = false;

  constructor(
    readonly device: VirtioDevice | undefined,
    opts: { packed?: boolean } = {},
  ) {
    this.core = testCore();
    this.mem = new GuestMemory(this.core);
    this.rings = new RingProcessor(this.core);
    this.transport = new VirtioMmioTransport({
      slot: 0,
      irq: this.irq,
      rings: this.rings,
      device,
      packed: opts.packed ?? MockDriver.offerPacked,
      log: this.log.sink,
    });
  }

  /** Queue `i` as a split ring, for tests of split-ring details. */
  split(i: number): DriverQueue {
    const q = this.queues[i];
    if (!(q instanceof DriverQueue)) throw new Error(`queue ${i} is not a split ring`);
    return q;
  }

  r(off: number): number {
    return this.transport.read(off, 4);
  }
  w(off: number, v: number): void {
    this.transport.write(off, 4, v >>> 0);
  }
  get status(): number {
    return this.r(MMIO.status);
  }

  offeredFeatures(): bigint {
    this.w(MMIO.deviceFeaturesSel, 0);
    const lo = BigInt(this.r(MMIO.deviceFeatures));
    this.w(MMIO.deviceFeaturesSel, 1);
    const hi = BigInt(this.r(MMIO.deviceFeatures));
    return lo | (hi << 32n);
  }

  writeFeatures(f: bigint): void {
    this.w(MMIO.driverFeaturesSel, 0);
    this.w(MMIO.driverFeatures, Number(f & 0xffff_ffffn));
    this.w(MMIO.driverFeaturesSel, 1);
    this.w(MMIO.driverFeatures, Number(f >> 32n));
  }

  /** Linux's probe: reset, ACK, DRIVER, features, FEATURES_OK, queues, DRIVER_OK. */
  init(opts: DriverOptions = {}): this {
    this.w(MMIO.status, 0);
    this.w(MMIO.status, STATUS.acknowledge);
    this.w(MMIO.status, STATUS.acknowledge | STATUS.driver);
    const offered = this.offeredFeatures();
    const accepted = opts.accept ? opts.accept(offered) : offered;
    this.writeFeatures(accepted);
    this.w(MMIO.status, STATUS.acknowledge | STATUS.driver | STATUS.featuresOk);
    if (!(this.status & STATUS.featuresOk)) throw new Error('device refused the features');
    const n = this.device?.queueMaxSizes.length ?? 0;
    const packed = (accepted & (1n << BigInt(F.ringPacked))) !== 0n;
    this.queues = [];
    for (let i = 0; i < n; i++) {
      this.w(MMIO.queueSel, i);
      const max = this.r(MMIO.queueNumMax);
      const size = opts.queueSizes?.[i] ?? max;
      const q = packed
        ? new PackedDriverQueue(this.mem, i, size)
        : new DriverQueue(this.mem, i, size);
      this.setupQueue(q);
      this.queues.push(q);
    }
    this.w(MMIO.status, STATUS.acknowledge | STATUS.driver | STATUS.featuresOk | STATUS.driverOk);
    return this;
  }

  setupQueue(q: DriverRing): void {
    this.w(MMIO.queueSel, q.index);
    this.w(MMIO.queueNum, q.size);
    this.w(MMIO.queueDescLow, q.desc);
    this.w(MMIO.queueDescHigh, 0);
    this.w(MMIO.queueDriverLow, q.avail);
    this.w(MMIO.queueDriverHigh, 0);
    this.w(MMIO.queueDeviceLow, q.used);
    this.w(MMIO.queueDeviceHigh, 0);
    this.w(MMIO.queueReady, 1);
  }

  kick(q = 0): void {
    this.w(MMIO.queueNotify, q);
  }

  /** Reads and acknowledges the interrupt status. */
  ack(): number {
    const isr = this.r(MMIO.interruptStatus);
    if (isr) this.w(MMIO.interruptAck, isr);
    return isr;
  }

  get needsReset(): boolean {
    return (this.status & STATUS.needsReset) !== 0;
  }

  static readonly F = F;
}

/** Lets pending promise callbacks and immediates run (asynchronous device back ends). */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/**
 * Declares the tests of `body` twice, in describes named "NAME (split ring)" and "NAME (packed
 * ring)": in the second, mock drivers' transports offer VIRTIO_F_RING_PACKED and the drivers
 * take it, so every case plays over packed rings too. `packed` tells a case which it runs on.
 */
export function forEachRingLayout(name: string, body: (packed: boolean) => void): void {
  for (const packed of [false, true]) {
    describe(`${name} (${packed ? 'packed' : 'split'} ring)`, () => {
      beforeAll(() => {
        MockDriver.offerPacked = packed;
      });
      afterAll(() => {
        MockDriver.offerPacked = false;
      });
      body(packed);
    });
  }
}
