/**
 * virtio-blk played by the mock driver against an in-memory back end: every request type, the
 * status byte, out-of-order completion with a bounded queue depth, one interrupt per batch,
 * and malformed or hostile requests.
 */
import { it, expect, vi } from 'vitest';
import {
  DriverQueue,
  EVENT_DISABLE,
  MockDriver,
  PackedDriverQueue,
  settle,
  type Buf,
  forEachRingLayout,
} from './driver.js';
import { VirtioBlk, BLK_T, BLK_S, BLK_F } from '../../../devices/virtio/blk/device.js';
import { BlockError, type BlockBackend } from '../../../devices/block/backend.js';
import { F, bit } from '../../../devices/virtio/constants.js';

/** A disk in memory; `delay(offset)` makes some requests finish later than others. */
class MemDisk implements BlockBackend {
  readonly name = 'mem';
  readonly data: Uint8Array;
  flushes = 0;
  inFlight = 0;
  maxInFlight = 0;
  delay: (offset: number) => number = () => 0;
  constructor(
    readonly size: number,
    readonly readOnly = false,
  ) {
    this.data = new Uint8Array(size);
  }
  private async op<T>(offset: number, f: () => T): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const ms = this.delay(offset);
    await new Promise((r) => (ms ? setTimeout(r, ms) : setImmediate(r)));
    this.inFlight--;
    return f();
  }
  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.op(offset, () => {
      if (offset + buf.length > this.size) throw new BlockError('out-of-range', 'read');
      buf.set(this.data.subarray(offset, offset + buf.length));
    });
  }
  write(offset: number, buf: Uint8Array): Promise<void> {
    return this.op(offset, () => {
      if (this.readOnly) throw new BlockError('read-only', 'write');
      this.data.set(buf, offset);
    });
  }
  flush(): Promise<void> {
    return this.op(0, () => void this.flushes++);
  }
  discard(offset: number, length: number): Promise<void> {
    return this.op(offset, () => void this.data.fill(0, offset, offset + length));
  }
  writeZeroes(offset: number, length: number): Promise<void> {
    return this.discard(offset, length);
  }
  async close(): Promise<void> {}
}

const SECTOR = 512;

function blk(
  o: { size?: number; ro?: boolean; maxInFlight?: number; accept?: (f: bigint) => bigint } = {},
) {
  const disk = new MemDisk(o.size ?? 1 << 20, o.ro);
  const dev = new VirtioBlk({
    backend: disk,
    serial: 'wasmvisor-test',
    maxInFlight: o.maxInFlight,
  });
  const d = new MockDriver(dev).init({ accept: o.accept });
  const q = d.queues[0];
  /** Posts a request: header, data buffers, status byte. Returns the status byte's address. */
  const submit = (type: number, sector: number, data: Buf[], indirect = false) => {
    const hdr = d.mem.alloc(16);
    d.mem.setU32(hdr, type);
    d.mem.setU32(hdr + 4, 0);
    d.mem.setU64(hdr + 8, sector);
    const status = d.mem.alloc(1);
    d.mem.setU8(status, 0xff);
    const bufs = [{ addr: hdr, len: 16 }, ...data, { addr: status, len: 1, write: true }];
    const head = indirect ? q.addIndirect(bufs) : q.add(bufs);
    return { head, status };
  };
  /** Kicks, then waits until `n` used entries arrived; returns them. */
  const done = async (n: number) => {
    d.kick();
    const got = [];
    for (let i = 0; i < 200 && got.length < n; i++) {
      await settle();
      got.push(...q.takeUsed());
      if (got.length < n) await new Promise((r) => setTimeout(r, 1));
    }
    return got;
  };
  return { disk, dev, d, q, submit, done };
}

forEachRingLayout('virtio-blk', () => {
  it('offers its features and describes the disk in config space', () => {
    const { d } = blk({ size: 8 << 20 });
    const f = d.offeredFeatures();
    for (const b of [BLK_F.sizeMax, BLK_F.segMax, BLK_F.blkSize, BLK_F.flush, BLK_F.discard]) {
      expect(f & bit(b)).not.toBe(0n);
    }
    expect(f & bit(BLK_F.writeZeroes)).not.toBe(0n);
    expect(f & bit(BLK_F.ro)).toBe(0n);
    expect(d.transport.read(0x100, 4)).toBe((8 << 20) / SECTOR); // capacity (low word)
    expect(d.transport.read(0x104, 4)).toBe(0);
    expect(d.transport.read(0x10c, 4)).toBe(254); // seg_max
    expect(d.transport.read(0x114, 4)).toBe(512); // blk_size
    expect(blk({ ro: true }).d.offeredFeatures() & bit(BLK_F.ro)).not.toBe(0n);
  });

  it('writes then reads back sectors through several segments, direct and indirect', async () => {
    const { d, disk, submit, done } = blk();
    const a = d.mem.put(new Uint8Array(SECTOR).fill(0x11));
    const b = d.mem.put(new Uint8Array(2 * SECTOR).fill(0x22));
    const w = submit(BLK_T.out, 4, [
      { addr: a, len: SECTOR },
      { addr: b, len: 2 * SECTOR },
    ]);
    expect(await done(1)).toEqual([{ id: w.head, len: 1 }]);
    expect(d.mem.u8(w.status)).toBe(BLK_S.ok);
    expect(disk.data[4 * SECTOR]).toBe(0x11);
    expect(disk.data[5 * SECTOR]).toBe(0x22);
    expect(disk.data[7 * SECTOR]).toBe(0);
    const r1 = d.mem.alloc(SECTOR);
    const r2 = d.mem.alloc(2 * SECTOR);
    const r = submit(
      BLK_T.in,
      4,
      [
        { addr: r1, len: SECTOR, write: true },
        { addr: r2, len: 2 * SECTOR, write: true },
      ],
      true,
    );
    expect(await done(1)).toEqual([{ id: r.head, len: 3 * SECTOR + 1 }]);
    expect(d.mem.u8(r.status)).toBe(BLK_S.ok);
    expect(d.mem.read(r1, SECTOR).every((x) => x === 0x11)).toBe(true);
    expect(d.mem.read(r2, 2 * SECTOR).every((x) => x === 0x22)).toBe(true);
  });

  it('header and data sharing one descriptor (any layout) work too', async () => {
    const { d, disk, q, done } = blk();
    const buf = d.mem.alloc(16 + SECTOR);
    d.mem.setU32(buf, BLK_T.out);
    d.mem.setU64(buf + 8, 1);
    d.mem.write(buf + 16, new Uint8Array(SECTOR).fill(7));
    const st = d.mem.alloc(1);
    q.add([
      { addr: buf, len: 16 + SECTOR },
      { addr: st, len: 1, write: true },
    ]);
    d.kick();
    await done(1);
    expect(d.mem.u8(st)).toBe(BLK_S.ok);
    expect(disk.data[SECTOR]).toBe(7);
  });

  it('flush, get-id, discard and write-zeroes', async () => {
    const { d, disk, submit, done } = blk();
    disk.data.fill(0x55);
    const f = submit(BLK_T.flush, 0, []);
    const idBuf = d.mem.alloc(20);
    const id = submit(BLK_T.getId, 0, [{ addr: idBuf, len: 20, write: true }]);
    const range = d.mem.alloc(16);
    d.mem.setU64(range, 8);
    d.mem.setU32(range + 8, 8);
    d.mem.setU32(range + 12, 0);
    const disc = submit(BLK_T.discard, 0, [{ addr: range, len: 16 }]);
    d.kick();
    await done(3);
    expect([f, id, disc].map((x) => d.mem.u8(x.status))).toEqual([0, 0, 0]);
    expect(disk.flushes).toBe(1);
    expect(new TextDecoder().decode(d.mem.read(idBuf, 14))).toBe('wasmvisor-test');
    expect(d.mem.u8(idBuf + 14)).toBe(0);
    expect(disk.data[8 * SECTOR]).toBe(0);
    expect(disk.data[16 * SECTOR]).toBe(0x55);
    // Discard with the unmap flag is unsupported; write-zeroes with it is fine.
    d.mem.setU32(range + 12, 1);
    const bad = submit(BLK_T.discard, 0, [{ addr: range, len: 16 }]);
    const wz = submit(BLK_T.writeZeroes, 0, [{ addr: range, len: 16 }]);
    d.kick();
    await done(2);
    expect(d.mem.u8(bad.status)).toBe(BLK_S.unsupp);
    expect(d.mem.u8(wz.status)).toBe(BLK_S.ok);
  });

  it('bad requests get IOERR or UNSUPP, never a crash', async () => {
    const { d, dev, submit, done } = blk({ size: 64 * SECTOR });
    const buf = d.mem.alloc(4096);
    const cases = [
      submit(BLK_T.in, 64, [{ addr: buf, len: SECTOR, write: true }]), // past the end
      submit(BLK_T.in, 2 ** 50, [{ addr: buf, len: SECTOR, write: true }]), // far past
      submit(BLK_T.out, 0, [{ addr: buf, len: 100 }]), // not whole sectors
      submit(99, 0, []), // unknown type
      submit(BLK_T.discard, 0, [{ addr: buf, len: 7 }]), // bad range list
    ];
    d.kick();
    await done(cases.length);
    expect(cases.map((c) => d.mem.u8(c.status))).toEqual([
      BLK_S.ioerr,
      BLK_S.ioerr,
      BLK_S.ioerr,
      BLK_S.unsupp,
      BLK_S.ioerr,
    ]);
    expect(dev.metrics.io_errors).toBe(4);
    expect(d.needsReset).toBe(false);
  });

  it('a read-only disk refuses writes, discards and write-zeroes', async () => {
    const { d, disk, submit, done } = blk({ ro: true });
    const buf = d.mem.put(new Uint8Array(SECTOR).fill(1));
    const w = submit(BLK_T.out, 0, [{ addr: buf, len: SECTOR }]);
    d.kick();
    await done(1);
    expect(d.mem.u8(w.status)).toBe(BLK_S.ioerr);
    expect(disk.data[0]).toBe(0);
  });

  it('a request without a status byte or a full header is malformed: NEEDS_RESET', async () => {
    const a = blk();
    const hdr = a.d.mem.alloc(16);
    a.q.add([{ addr: hdr, len: 16 }]); // no writable status byte
    a.d.kick();
    expect(a.d.needsReset).toBe(true);
    expect(a.dev.metrics.malformed).toBe(1);
    const b = blk();
    b.q.add([
      { addr: b.d.mem.alloc(8), len: 8 },
      { addr: b.d.mem.alloc(1), len: 1, write: true },
    ]);
    b.d.kick();
    expect(b.d.needsReset).toBe(true);
  });

  it('never writes into a read-only data segment (the ring puts writable ones last)', async () => {
    const { d, q } = blk();
    const hdr = d.mem.alloc(16);
    d.mem.setU32(hdr, BLK_T.in);
    const data = d.mem.alloc(SECTOR);
    const st = d.mem.alloc(1);
    // An IN whose data buffer is device-readable: the device must not fill it.
    q.add([
      { addr: hdr, len: 16 },
      { addr: data, len: SECTOR },
      { addr: st, len: 1, write: true },
    ]);
    d.kick();
    await settle();
    await settle();
    expect(d.mem.read(data, SECTOR).every((x) => x === 0)).toBe(true);
  });

  it('completes out of order, bounds the queue depth, and interrupts once per batch', async () => {
    const { d, disk, dev, submit, done } = blk({ maxInFlight: 4 });
    // Request i waits (8 - i) ms: later requests finish first.
    disk.delay = (off) => 8 - off / SECTOR;
    const reqs: { head: number; status: number }[] = [];
    for (let i = 0; i < 8; i++) {
      reqs.push(submit(BLK_T.in, i, [{ addr: d.mem.alloc(SECTOR), len: SECTOR, write: true }]));
    }
    d.kick();
    expect(dev.metrics.in_flight).toBe(4);
    const used = await done(8);
    expect(used).toHaveLength(8);
    expect(disk.maxInFlight).toBeLessThanOrEqual(4);
    expect(dev.metrics.max_in_flight).toBe(4);
    const order = used.map((u) => reqs.findIndex((r) => r.head === u.id));
    expect(order).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(order.slice(0, 4).sort()).toEqual([0, 1, 2, 3]);
    // Interrupt decisions happen per batch, not per request.
    expect(dev.metrics.batches).toBeLessThanOrEqual(dev.metrics.completions);
    expect(d.transport.metrics.interrupts).toBeLessThanOrEqual(dev.metrics.batches);
  });

  it('a polling driver (interrupts off, no EVENT_IDX: U-Boot) ends its slice at the kick and gets the request back as soon as it is done', async () => {
    const noEventIdx = (f: bigint) => f & ~bit(F.eventIdx);
    const read = (b: ReturnType<typeof blk>, sector: number) =>
      b.submit(BLK_T.in, sector, [{ addr: b.d.mem.alloc(SECTOR), len: SECTOR, write: true }]);
    // Interrupts on: the kick leaves the slice alone; completions go out in the next turn's batch.
    const on = blk({ accept: noEventIdx });
    // The drivers share one test core (and its RAM: `off` is made once `on` is done).
    const exit = vi.spyOn(on.d.core, 'requestExit');
    try {
      exit.mockClear();
      read(on, 1);
      on.d.kick();
      expect(exit).not.toHaveBeenCalled();
      await settle(); // the back end's read completes in this turn
      expect(on.q.takeUsed()).toEqual([]);
      await settle();
      expect(on.q.takeUsed()).toHaveLength(1);
      // Interrupts off: the slice ends at the kick, the completion is published with the read.
      const off = blk({ accept: noEventIdx });
      if (off.q instanceof PackedDriverQueue) off.q.setDriverEvent(EVENT_DISABLE);
      else (off.q as DriverQueue).setNoInterrupt(true);
      const r = read(off, 2);
      off.d.kick();
      expect(exit).toHaveBeenCalledTimes(1);
      expect(off.dev.metrics.polled_kicks).toBe(1);
      await settle();
      expect(off.q.takeUsed()).toEqual([{ id: r.head, len: SECTOR + 1 }]);
      expect(off.d.mem.u8(r.status)).toBe(BLK_S.ok);
      expect(off.d.irq.level).toBe(false);
    } finally {
      exit.mockRestore();
    }
  });

  it('completions of requests issued before a reset are dropped', async () => {
    const { d, disk, submit } = blk();
    disk.delay = () => 5;
    const r = submit(BLK_T.in, 0, [{ addr: d.mem.alloc(SECTOR), len: SECTOR, write: true }]);
    d.kick();
    d.w(0x070, 0); // reset
    await new Promise((res) => setTimeout(res, 20));
    expect(d.mem.u8(r.status)).toBe(0xff);
  });
});
