/**
 * virtio-net played by the mock driver: frames with their virtio_net_hdr on the transmit queue,
 * received frames in posted buffers (one per chain, or merged over several with MRG_RXBUF), the
 * link STATUS announced with a configuration-change interrupt, and hostile transmit headers and
 * chains, which are dropped and counted and never throw.
 */
import { describe, it, expect } from 'vitest';
import {
  DriverQueue,
  EVENT_DESC,
  EVENT_DISABLE,
  MockDriver,
  PackedDriverQueue,
  type DriverRing,
  forEachRingLayout,
} from './driver.js';
import { VirtioNet, NET_F } from '../../../devices/virtio/net/device.js';
import { NetPort } from '../../../devices/net/port.js';
import type { NetBackend } from '../../../devices/net/backend.js';
import { GSO_TCPV4, type NetPacket } from '../../../devices/net/packet.js';
import { internetChecksum, onesSum, segmentTcp } from '../../../devices/net/offload.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pcapFrames } from '../net/pcap-frames.js';
import { F, MMIO } from '../../../devices/virtio/constants.js';

const HDR = 12;
const MAC = Uint8Array.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

/** A back end that keeps what the NIC sends and lets the test deliver frames and carrier. */
class FakeWire implements NetBackend {
  readonly sent: NetPacket[] = [];
  carrier = true;
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  rxFrameAlign: (() => number | undefined) | undefined;
  constructor(readonly spec = 'switch:fake') {}
  send(p: NetPacket): void {
    this.sent.push(p);
  }
  close(): void {}
}

/** An IPv4/TCP frame with `payload` bytes: 14 + 20 + 20 header bytes. */
function tcpFrame(payload: number): Uint8Array {
  const d = new Uint8Array(54 + payload);
  d.set([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x54, 0, 0, 0, 2], 0);
  d[12] = 0x08;
  d[14] = 0x45;
  new DataView(d.buffer).setUint16(16, 40 + payload);
  d[22] = 64;
  d[23] = 6;
  d.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  d[46] = 0x50;
  d[47] = 0x18;
  for (let i = 54; i < d.length; i++) d[i] = i & 0xff;
  return d;
}

function header(
  o: {
    flags?: number;
    gsoType?: number;
    hdrLen?: number;
    gsoSize?: number;
    csumStart?: number;
    csumOffset?: number;
  } = {},
): Uint8Array {
  const h = new Uint8Array(HDR);
  const v = new DataView(h.buffer);
  h[0] = o.flags ?? 0;
  h[1] = o.gsoType ?? 0;
  v.setUint16(2, o.hdrLen ?? 0, true);
  v.setUint16(4, o.gsoSize ?? 0, true);
  v.setUint16(6, o.csumStart ?? 0, true);
  v.setUint16(8, o.csumOffset ?? 0, true);
  return h;
}

function netDriver(accept?: (f: bigint) => bigint, queueSize = 64) {
  const wire = new FakeWire();
  const other = new FakeWire('none');
  other.carrier = false;
  const port = new NetPort('virtio-net0', wire, (spec) => (spec === 'none' ? other : wire));
  const dev = new VirtioNet('virtio-net0', MAC, port, queueSize);
  const d = new MockDriver(dev).init({ accept });
  return { d, dev, port, wire, rx: d.queues[0], tx: d.queues[1] };
}

const without =
  (...bits: number[]) =>
  (f: bigint): bigint =>
    bits.reduce((acc, b) => acc & ~(1n << BigInt(b)), f);

/** Posts `n` receive buffers of `len` bytes; returns their addresses by head id. */
function postRx(d: MockDriver, rx: DriverRing, n: number, len: number): Map<number, number> {
  const bufs = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const a = d.mem.alloc(len);
    bufs.set(rx.add([{ addr: a, len, write: true }]), a);
  }
  d.kick(0);
  return bufs;
}

/** The core returning to the run loop: microtasks queued during the slice run. */
const sliceEnd = (): Promise<void> => new Promise((r) => setImmediate(r));

function sendTx(d: MockDriver, tx: DriverRing, hdr: Uint8Array, frame: Uint8Array): number {
  const id = tx.add([
    { addr: d.mem.put(hdr), len: hdr.length },
    { addr: d.mem.put(frame), len: frame.length },
  ]);
  d.kick(1);
  return id;
}

forEachRingLayout('virtio-net', () => {
  it('offers MAC, STATUS, MRG_RXBUF and the offloads; config space holds MAC and link up', () => {
    const { d } = netDriver();
    expect(d.r(MMIO.deviceId)).toBe(1);
    const f = d.offeredFeatures();
    for (const b of Object.values(NET_F)) expect(f & (1n << BigInt(b))).not.toBe(0n);
    const mac = Array.from({ length: 6 }, (_, i) => d.transport.read(MMIO.config + i, 1));
    expect(mac).toEqual(Array.from(MAC));
    expect(d.transport.read(MMIO.config + 6, 2)).toBe(1); // VIRTIO_NET_S_LINK_UP
    expect(d.queues).toHaveLength(3); // receive, transmit, control
  });

  it('transmits header + frame (split over buffers) at once, returns the chains when the slice ends', async () => {
    const { d, dev, wire, tx } = netDriver();
    const frame = tcpFrame(100);
    const id = sendTx(d, tx, header(), frame);
    expect(wire.sent).toHaveLength(1);
    expect(wire.sent[0].data).toEqual(frame);
    expect(wire.sent[0].csum).toBeUndefined();
    expect(wire.sent[0].gso).toBeUndefined();
    // Still in flight for the guest (its skb not freed, so TCP can cork what it writes next).
    const id2 = sendTx(d, tx, header(), frame);
    expect(wire.sent).toHaveLength(2);
    expect(tx.takeUsed()).toEqual([]);
    expect(d.irq.level).toBe(false);
    await sliceEnd();
    expect(tx.takeUsed()).toEqual([
      { id, len: 0 },
      { id: id2, len: 0 },
    ]);
    expect(d.irq.level).toBe(true);
    expect(d.transport.stats().interrupts).toBe(1); // one for both
    const n = frame.length;
    expect(dev.stats).toMatchObject({ tx_packets: 2, tx_bytes: 2 * n, net_tx_frames: 2 });
    expect(dev.stats.net_tx_bytes).toBe(2 * n);
  });

  it('a driver that polls (interrupts off, no EVENT_IDX: U-Boot) gets its transmit chains back in the kick', async () => {
    const { d, dev, wire, tx } = netDriver(without(F.eventIdx));
    const frame = tcpFrame(60);
    // Interrupts on, without EVENT_IDX: completed when the slice ends, as for any driver.
    const first = sendTx(d, tx, header(), frame);
    expect(tx.takeUsed()).toEqual([]);
    await sliceEnd();
    expect(tx.takeUsed()).toEqual([{ id: first, len: 0 }]);
    expect(d.irq.level).toBe(true);
    d.ack();
    // Interrupts off: the driver spins on the used ring, so the chain is back before the kick
    // returns, and no interrupt is raised.
    if (tx instanceof PackedDriverQueue) tx.setDriverEvent(EVENT_DISABLE);
    else (tx as DriverQueue).setNoInterrupt(true);
    const id = sendTx(d, tx, header(), frame);
    expect(wire.sent).toHaveLength(2);
    expect(tx.takeUsed()).toEqual([{ id, len: 0 }]);
    await sliceEnd();
    expect(d.irq.level).toBe(false);
    expect(dev.metrics.tx_polled_completions).toBe(1);
  });

  it('carries a partial checksum and a 64 KiB TSO segment across as metadata', () => {
    const { d, dev, wire, tx } = netDriver();
    const big = tcpFrame(60_000);
    sendTx(
      d,
      tx,
      header({
        flags: 1,
        gsoType: GSO_TCPV4,
        hdrLen: 54,
        gsoSize: 1448,
        csumStart: 34,
        csumOffset: 16,
      }),
      big,
    );
    expect(wire.sent[0].gso).toEqual({ type: GSO_TCPV4, size: 1448, hdrLen: 54 });
    expect(wire.sent[0].csum).toEqual({ start: 34, offset: 16 });
    expect(dev.metrics).toMatchObject({ tx_gso: 1, tx_csum: 1, tx_malformed: 0 });
  });

  it('receives a frame after a zeroed header into one buffer (no MRG_RXBUF: num_buffers 0)', () => {
    const { d, dev, wire, rx } = netDriver(without(NET_F.mrgRxbuf));
    const bufs = postRx(d, rx, 4, 1526);
    d.ack();
    const frame = tcpFrame(200);
    wire.onReceive!({ data: frame });
    const used = rx.takeUsed();
    expect(used).toEqual([{ id: 0, len: HDR + frame.length }]);
    const a = bufs.get(0)!;
    expect(d.mem.read(a, HDR)).toEqual(new Uint8Array(HDR));
    expect(d.mem.read(a + HDR, frame.length)).toEqual(frame);
    expect(d.ack() & 1).toBe(1);
    expect(dev.stats).toMatchObject({
      rx_packets: 1,
      rx_bytes: frame.length,
      net_rx_bytes: frame.length,
    });
  });

  it('with MRG_RXBUF merges a large frame over several buffers and says how many', () => {
    const { d, dev, wire, rx } = netDriver();
    const bufs = postRx(d, rx, 8, 1024);
    const frame = tcpFrame(2500); // 12 + 2554 bytes: three 1 KiB buffers
    wire.onReceive!({ data: frame });
    const used = rx.takeUsed();
    expect(used.map((u) => u.len)).toEqual([1024, 1024, HDR + frame.length - 2048]);
    const first = bufs.get(used[0].id)!;
    expect(d.mem.u16(first + 10)).toBe(3); // num_buffers
    const got = new Uint8Array(HDR + frame.length);
    let o = 0;
    for (const u of used) {
      got.set(d.mem.read(bufs.get(u.id)!, u.len), o);
      o += u.len;
    }
    expect(got.subarray(HDR)).toEqual(frame);
    expect(dev.metrics.rx_buffers_used).toBe(3);
    // A small frame takes one buffer: num_buffers 1.
    wire.onReceive!({ data: tcpFrame(10) });
    const [u] = rx.takeUsed();
    expect(d.mem.u16(bufs.get(u.id)! + 10)).toBe(1);
  });

  it("tells the back end where the driver's buffers put a frame, mod 8, while they agree", () => {
    const { d, dev, wire, rx } = netDriver();
    expect(wire.rxFrameAlign!()).toBeUndefined(); // no frame placed yet
    postRx(d, rx, 3, 1024); // 16-byte aligned: byte 0 after the 12-byte header, at 4 mod 8
    wire.onReceive!({ data: tcpFrame(2500) });
    expect(wire.rxFrameAlign!()).toBe(4);
    // Header split 6 + 6: the frame starts 6 bytes into the second buffer (6 mod 8). One such
    // frame disagrees with the last one: unknown; a second agrees.
    const split = (): void => {
      const a = d.mem.alloc(6);
      const b = d.mem.alloc(600);
      rx.add([
        { addr: a, len: 6, write: true },
        { addr: b, len: 600, write: true },
      ]);
      d.kick(0);
      wire.onReceive!({ data: tcpFrame(100) });
    };
    split();
    expect(wire.rxFrameAlign!()).toBeUndefined();
    split();
    expect(wire.rxFrameAlign!()).toBe(6);
    // One frame over buffers of 1001 bytes: the second buffer starts at frame byte 989, which
    // puts byte 0 at 3 mod 8 by that buffer and 4 by the first: unknown.
    postRx(d, rx, 2, 1001);
    wire.onReceive!({ data: tcpFrame(1500) });
    expect(rx.takeUsed().map((u) => u.len)).toContain(1001);
    expect(wire.rxFrameAlign!()).toBeUndefined();
    postRx(d, rx, 2, 2048);
    wire.onReceive!({ data: tcpFrame(100) });
    expect(dev.rxFrameAlign()).toBeUndefined(); // not the last frame's
    wire.onReceive!({ data: tcpFrame(100) });
    expect(dev.rxFrameAlign()).toBe(4);
    d.w(MMIO.status, 0); // a device reset forgets it
    expect(dev.rxFrameAlign()).toBeUndefined();
  });

  it('holds frames while no buffers are posted and delivers them when the guest posts some', () => {
    const { d, dev, wire, rx, port } = netDriver();
    wire.onReceive!({ data: tcpFrame(10) });
    wire.onReceive!({ data: tcpFrame(20) });
    expect(port.stats.rx_backlog).toBe(2);
    postRx(d, rx, 4, 1526);
    expect(rx.takeUsed()).toHaveLength(2);
    expect(port.stats.rx_backlog).toBe(0);
    expect(dev.metrics.rx_packets).toBe(2);
  });

  it('a frame that finds the ring just used up asks the driver to kick when it posts more (EVENT_IDX)', () => {
    // Linux kicks after a refill only if avail_event falls in the entries it just added
    // (vring_need_event). A frame that arrives when the last posted buffer was taken by the frame
    // before must set avail_event, or the guest refills silently and the frame waits in the
    // backlog for good (a TCP transfer over the switch stalled so, intermittently).
    const { d, wire, rx, port } = netDriver();
    postRx(d, rx, 4, 1526);
    for (let i = 0; i < 4; i++) wire.onReceive!({ data: tcpFrame(100 + i) });
    expect(rx.takeUsed()).toHaveLength(4);
    wire.onReceive!({ data: tcpFrame(200) });
    expect(port.stats.rx_backlog).toBe(1);
    if (rx instanceof PackedDriverQueue) {
      // Packed: the device's event suppression names the next descriptor it will read.
      const at = [rx.nextAvail, rx.availWrap];
      for (let i = 0; i < 4; i++) rx.add([{ addr: d.mem.alloc(1526), len: 1526, write: true }]);
      const ev = rx.deviceEvent;
      expect(ev.flags).toBe(EVENT_DESC);
      expect([ev.pos, ev.wrap]).toEqual(at);
    } else {
      const q = d.split(0);
      const old = q.availIdx;
      for (let i = 0; i < 4; i++) q.add([{ addr: d.mem.alloc(1526), len: 1526, write: true }]);
      const now = q.availIdx;
      const needEvent = ((now - q.availEvent - 1) & 0xffff) < ((now - old) & 0xffff);
      expect(needEvent).toBe(true);
    }
    d.kick(0);
    expect(rx.takeUsed()).toHaveLength(1);
    expect(port.stats.rx_backlog).toBe(0);
  });

  it('a GSO segment passed up whole to a GUEST_TSO4 guest is captured as the MSS frames a link carries', async () => {
    const { d, dev, wire, rx, port } = netDriver();
    postRx(d, rx, 32, 2048);
    const dir = mkdtempSync(join(tmpdir(), 'wv-virtio-pcap-'));
    const pcap = join(dir, 'v.pcap');
    await port.startCapture(pcap);
    const big = tcpFrame(8000);
    const p = {
      data: big,
      csum: { start: 34, offset: 16 },
      gso: { type: GSO_TCPV4, size: 1448, hdrLen: 54 } as const,
    };
    wire.onReceive!(p);
    await port.stopCapture();
    expect(dev.metrics).toMatchObject({ rx_packets: 1, rx_gso: 1, rx_segmented: 0 });
    const frames = pcapFrames(pcap);
    rmSync(dir, { recursive: true, force: true });
    expect(frames.map((f) => f.length - 54)).toEqual([1448, 1448, 1448, 1448, 1448, 760]);
    expect(frames).toEqual(segmentTcp(big, 1448).map((f) => f.data));
  });

  it('a GSO segment for a guest without GUEST_TSO4 arrives cut into MTU frames with checksums', () => {
    const { d, dev, wire, rx } = netDriver(without(NET_F.guestTso4, NET_F.guestTso6));
    const bufs = postRx(d, rx, 32, 1526);
    const big = tcpFrame(8000);
    // The partial checksum field holds the pseudo-header sum, as Linux leaves it.
    wire.onReceive!({
      data: big,
      csum: { start: 34, offset: 16 },
      gso: { type: GSO_TCPV4, size: 1448, hdrLen: 54 },
    });
    const used = rx.takeUsed();
    expect(used).toHaveLength(Math.ceil(8000 / 1448));
    expect(Math.max(...used.map((u) => u.len))).toBeLessThanOrEqual(HDR + 1514);
    expect(dev.metrics.rx_segmented).toBe(1);
    // Each cut frame carries a complete, correct TCP checksum.
    const first = bufs.get(used[0].id)!;
    const f0 = d.mem.read(first + HDR, used[0].len - HDR);
    const pseudo = new Uint8Array(12);
    pseudo.set(f0.subarray(26, 34));
    pseudo[9] = 6;
    new DataView(pseudo.buffer).setUint16(10, f0.length - 34);
    const seed = onesSum(pseudo, 0, 12);
    expect(internetChecksum(f0, 34, f0.length, seed)).toBe(0);
  });

  it('a GSO segment whose headers cannot be cut is dropped and counted, not left in the backlog', () => {
    const { d, dev, wire, rx, port } = netDriver(without(NET_F.guestTso4, NET_F.guestTso6));
    postRx(d, rx, 8, 1526);
    const bad = tcpFrame(4000);
    bad[46] = 0x20; // TCP data offset 2 words: shorter than a TCP header
    wire.onReceive!({ data: bad, gso: { type: GSO_TCPV4, size: 1448, hdrLen: 54 } });
    expect(rx.takeUsed()).toHaveLength(0);
    expect(dev.metrics.rx_offload_dropped).toBe(1);
    expect(port.stats.rx_backlog).toBe(0);
    // The next good frame still arrives.
    wire.onReceive!({ data: tcpFrame(10) });
    expect(rx.takeUsed()).toHaveLength(1);
  });

  it('link down and up: STATUS follows and each change raises a configuration interrupt', () => {
    const { d, dev, port, wire, tx } = netDriver();
    d.ack();
    const gen = d.r(MMIO.configGeneration);
    port.setLink(false);
    expect(d.transport.read(MMIO.config + 6, 2)).toBe(0);
    expect(d.irq.level).toBe(true);
    expect(d.ack() & 2).toBe(2); // configuration change
    expect(d.r(MMIO.configGeneration)).not.toBe(gen);
    // Frames sent while the cable is out are dropped and counted; none reach the wire.
    sendTx(d, tx, header(), tcpFrame(10));
    expect(wire.sent).toHaveLength(0);
    expect(dev.stats.net_tx_link_down).toBe(1);
    d.ack();
    port.setLink(true);
    expect(d.transport.read(MMIO.config + 6, 2)).toBe(1);
    expect(d.ack() & 2).toBe(2);
    expect(dev.metrics.link_changes).toBe(2);
    // A back end without a carrier (none) is a pulled cable too.
    port.setBackend('none');
    expect(d.transport.read(MMIO.config + 6, 2)).toBe(0);
    expect(d.ack() & 2).toBe(2);
    expect(dev.metrics.link_changes).toBe(3);
  });

  describe('hostile transmit headers and chains are dropped, counted, never thrown', () => {
    const cases: [string, Uint8Array, Uint8Array][] = [
      [
        'a bogus gso_type',
        header({ flags: 1, gsoType: 3, gsoSize: 1448, csumStart: 34, csumOffset: 16 }),
        tcpFrame(3000),
      ],
      [
        'gso_type UDP (not offered)',
        header({ flags: 1, gsoType: 3 | 0x80, gsoSize: 1 }),
        tcpFrame(100),
      ],
      [
        'GSO without NEEDS_CSUM',
        header({ gsoType: GSO_TCPV4, gsoSize: 1448, hdrLen: 54 }),
        tcpFrame(3000),
      ],
      [
        'GSO with gso_size 0',
        header({ flags: 1, gsoType: GSO_TCPV4, csumStart: 34, csumOffset: 16 }),
        tcpFrame(3000),
      ],
      [
        'csum_offset past the frame',
        header({ flags: 1, csumStart: 34, csumOffset: 200 }),
        tcpFrame(100),
      ],
      [
        'csum_start past the frame',
        header({ flags: 1, csumStart: 0xffff, csumOffset: 0xffff }),
        tcpFrame(100),
      ],
      ['a header and no frame', header(), new Uint8Array(0)],
      ['a runt (shorter than an Ethernet header)', header(), new Uint8Array(13)],
      ['a frame larger than 64 KiB + headers', header(), new Uint8Array(70_000)],
    ];
    it.each(cases)('%s', async (_what, hdr, frame) => {
      const { d, dev, wire, tx } = netDriver();
      const bufs = [{ addr: d.mem.put(hdr), len: hdr.length }];
      if (frame.length) bufs.push({ addr: d.mem.put(frame), len: frame.length });
      const id = tx.add(bufs);
      expect(() => d.kick(1)).not.toThrow();
      expect(wire.sent).toHaveLength(0);
      expect(dev.metrics.tx_malformed).toBe(1);
      await sliceEnd();
      expect(tx.takeUsed()).toEqual([{ id, len: 0 }]); // the buffer comes back
      expect(d.needsReset).toBe(false);
      // The queue still works afterwards.
      sendTx(d, tx, header(), tcpFrame(10));
      expect(wire.sent).toHaveLength(1);
    });

    it('a header split at every byte over 12 one-byte buffers is still parsed', () => {
      const { d, wire, tx } = netDriver();
      const hdr = header();
      const frame = tcpFrame(20);
      tx.add([
        ...Array.from(hdr, (b) => ({ addr: d.mem.put(Uint8Array.of(b)), len: 1 })),
        { addr: d.mem.put(frame), len: frame.length },
      ]);
      d.kick(1);
      expect(wire.sent[0]?.data).toEqual(frame);
    });

    it('a chain of only device-writable buffers on the transmit queue is malformed', () => {
      const { d, dev, wire, tx } = netDriver();
      tx.add([{ addr: d.mem.alloc(1600), len: 1600, write: true }]);
      expect(() => d.kick(1)).not.toThrow();
      expect(wire.sent).toHaveLength(0);
      expect(dev.metrics.tx_malformed).toBe(1);
    });

    it('a zero-length descriptor breaks the ring: NEEDS_RESET, counted, no throw', () => {
      const { d, wire, tx } = netDriver();
      tx.add([
        { addr: d.mem.put(header()), len: HDR },
        { addr: d.mem.alloc(64), len: 0 },
      ]);
      expect(() => d.kick(1)).not.toThrow();
      expect(wire.sent).toHaveLength(0);
      expect(d.needsReset).toBe(true);
      expect(d.transport.metrics.errors).toBeGreaterThan(0);
    });

    it('a huge chain (the whole queue, 64 descriptors of 1 KiB) is too long a frame: dropped', () => {
      const { d, dev, wire, tx } = netDriver(undefined, 64);
      const bufs = [{ addr: d.mem.put(header()), len: HDR }];
      for (let i = 0; i < 63; i++) bufs.push({ addr: d.mem.alloc(1100), len: 1100 });
      tx.addIndirect(bufs);
      expect(() => d.kick(1)).not.toThrow();
      expect(wire.sent).toHaveLength(0);
      expect(dev.metrics.tx_malformed).toBe(1);
    });
  });

  describe('hostile receive buffers', () => {
    it('without MRG_RXBUF a buffer too small for the frame drops it, counted; the buffer returns', () => {
      const { d, dev, wire, rx } = netDriver(without(NET_F.mrgRxbuf));
      postRx(d, rx, 1, 100);
      expect(() => wire.onReceive!({ data: tcpFrame(500) })).not.toThrow();
      expect(rx.takeUsed()).toEqual([{ id: 0, len: 0 }]);
      expect(dev.metrics.rx_too_big).toBe(1);
    });

    it('with MRG_RXBUF, chains with no room for a header are returned unused and counted', () => {
      const { d, dev, wire, rx } = netDriver();
      const ro = rx.add([{ addr: d.mem.alloc(64), len: 64 }]); // not writable
      const tiny = rx.add([{ addr: d.mem.alloc(4), len: 4, write: true }]); // < header
      const a = d.mem.alloc(2048);
      const good = rx.add([{ addr: a, len: 2048, write: true }]);
      d.kick(0);
      const frame = tcpFrame(100);
      expect(() => wire.onReceive!({ data: frame })).not.toThrow();
      expect(rx.takeUsed()).toEqual([
        { id: ro, len: 0 },
        { id: tiny, len: 0 },
        { id: good, len: HDR + frame.length },
      ]);
      expect(d.mem.u16(a + 10)).toBe(1);
      expect(d.mem.read(a + HDR, frame.length)).toEqual(frame);
      expect(dev.metrics.rx_bad_buffers).toBe(2);
    });

    it('with MRG_RXBUF, a header split over buffers of one chain still gets num_buffers', () => {
      const { d, wire, rx } = netDriver();
      const a = d.mem.alloc(6);
      const b = d.mem.alloc(600);
      rx.add([
        { addr: a, len: 6, write: true },
        { addr: b, len: 600, write: true },
      ]);
      const c = d.mem.alloc(600);
      rx.add([{ addr: c, len: 600, write: true }]);
      d.kick(0);
      const frame = tcpFrame(1000);
      wire.onReceive!({ data: frame });
      expect(rx.takeUsed().map((u) => u.len)).toEqual([606, HDR + frame.length - 606]);
      expect(d.mem.u16(b + 4)).toBe(2); // header bytes 10..11 are bytes 4..5 of the 2nd buffer
      expect(d.mem.read(b + 6, 594)).toEqual(frame.subarray(0, 594));
    });

    it('a guest that posts too little room holds frames in the bounded backlog, not forever', () => {
      const { d, port, wire, rx } = netDriver();
      postRx(d, rx, 2, 64); // 128 bytes: not enough for a 1 KiB frame
      for (let i = 0; i < 300; i++) wire.onReceive!({ data: tcpFrame(1000) });
      expect(rx.takeUsed()).toEqual([]);
      expect(port.stats.rx_backlog).toBeLessThanOrEqual(256);
      expect(port.stats.rx_dropped).toBeGreaterThan(0);
    });
  });

  it('a device reset drops what waited in the backlog; after re-init it works again', () => {
    const { d, port, wire, rx } = netDriver();
    wire.onReceive!({ data: tcpFrame(10) });
    expect(port.stats.rx_backlog).toBe(1);
    d.w(MMIO.status, 0);
    expect(port.stats.rx_backlog).toBe(0);
    d.init();
    postRx(d, d.queues[0], 2, 1526);
    wire.onReceive!({ data: tcpFrame(10) });
    expect(d.queues[0].takeUsed()).toHaveLength(1);
    expect(rx).not.toBe(d.queues[0]);
  });
});
