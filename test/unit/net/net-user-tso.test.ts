/**
 * net=user sends host → guest TCP data as large TSO segments (gso size = the guest's MSS,
 * partial checksum), played against real host sockets on 127.0.0.1:
 *   - through a real NetPort and virtio-net (mock driver) that negotiated GUEST_TSO4: a 1 MiB
 *     write arrives as a few large frames whose cut form is the stream byte for byte, with
 *     checksums that verify; without GUEST_TSO4 the same arrives as MSS frames with checksums;
 *   - at the NAT's output: a partly acknowledged large segment is resent from the ACK on only,
 *     and the guest's window bounds what is in flight.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { NetPort } from '../../../devices/net/port.js';
import { GSO_TCPV4, type NetPacket } from '../../../devices/net/packet.js';
import { segmentTcp } from '../../../devices/net/offload.js';
import { UserNetwork } from '../../../devices/net/user/index.js';
import { NET_F, VirtioNet } from '../../../devices/virtio/net/device.js';
import { MockDriver } from '../virtio/driver.js';
import { F, GATEWAY, GUEST, GUEST_MAC, harness, tcp, tcpOut, until } from './user-frames.js';

const MSS = 1460;
/** virtio_net_hdr with num_buffers (MRG_RXBUF). */
const HDR = 12;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** A host server on 127.0.0.1 that writes `body` to each connection, then ends it. */
async function source(body: Buffer): Promise<{ port: number; socks: Socket[] }> {
  const socks: Socket[] = [];
  const srv: Server = createServer({ allowHalfOpen: true }, (s) => {
    socks.push(s);
    s.on('error', () => {});
    s.end(body);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    for (const s of socks) s.destroy();
    srv.close();
  });
  return { port: (srv.address() as AddressInfo).port, socks };
}

/** A frame the guest received, with the virtio_net_hdr the device wrote before it. */
interface Rx {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  frame: Uint8Array;
  /** Guest address of the first buffer (where the header went). */
  addr: number;
}

/** The frame as its receiver sees it: a NEEDS_CSUM partial checksum to finish, or complete. */
const packet = (r: Rx): NetPacket =>
  r.flags & 1
    ? { data: r.frame, csum: { start: r.csumStart, offset: r.csumOffset } }
    : { data: r.frame };

/**
 * The user network behind a NetPort and a virtio-net whose driver (the mock) took every feature
 * (MRG_RXBUF, GUEST_CSUM, GUEST_TSO4…) or none of the receive offloads (no GUEST_CSUM, no
 * GUEST_TSO4/6: every frame must arrive wire-sized and fully checksummed); 4 KiB receive
 * buffers, as Linux posts them, reposted as they come back. `skew(i)` moves buffer i that many
 * bytes past its 16-byte aligned start (Linux's are 64-byte aligned: no skew).
 */
function virtioGuest(offloads: boolean, skew: (i: number) => number = () => 0) {
  const net = new UserNetwork('user', { resolver: null });
  const port = new NetPort('virtio-net0', net, () => net);
  const dev = new VirtioNet('virtio-net0', GUEST_MAC, port, 256);
  const none = ~[NET_F.guestCsum, NET_F.guestTso4, NET_F.guestTso6]
    .map((b) => 1n << BigInt(b))
    .reduce((a, b) => a | b);
  const d = new MockDriver(dev).init({ accept: offloads ? undefined : (f) => f & none });
  cleanup.push(() => void port.close());
  const rx = d.queues[0];
  const bufs = new Map<number, number>();
  const post = (a: number): void => void bufs.set(rx.add([{ addr: a, len: 4096, write: true }]), a);
  for (let i = 0; i < 128; i++) post(d.mem.alloc(4096 + 8) + skew(i));
  d.kick(0);
  /** Frames received since the last call; their buffers go back to the device. */
  const take = (): Rx[] => {
    const used = rx.takeUsed();
    const out: Rx[] = [];
    for (let i = 0; i < used.length;) {
      const n = d.mem.u16(bufs.get(used[i].id)! + 10);
      const parts = used.slice(i, i + n).map((u) => d.mem.read(bufs.get(u.id)!, u.len));
      const all = Buffer.concat(parts);
      const v = new DataView(all.buffer, all.byteOffset);
      out.push({
        flags: all[0],
        gsoType: all[1],
        hdrLen: v.getUint16(2, true),
        gsoSize: v.getUint16(4, true),
        csumStart: v.getUint16(6, true),
        csumOffset: v.getUint16(8, true),
        frame: new Uint8Array(all.subarray(HDR)),
        addr: bufs.get(used[i].id)!,
      });
      i += n;
    }
    for (const u of used) {
      const a = bufs.get(u.id)!;
      bufs.delete(u.id);
      post(a);
    }
    if (used.length > 0) d.kick(0);
    return out;
  };
  return { dev, port, take };
}

/**
 * Plays the guest's TCP against 10.0.2.2:port: handshake, then acknowledges in-order data with
 * an open 8 MiB window until the NAT's FIN. Returns every data frame (as the NIC handed it
 * over) and the bytes of the stream.
 */
async function download(g: ReturnType<typeof virtioGuest>, port: number, bytes: number) {
  const sport = 40100;
  const send = (o: { seq: number; ack?: number; flags: number; mss?: number }) =>
    g.port.transmit({
      data: tcp({ sport, dport: port, win: 65535, ...o, wscale: o.mss ? 7 : undefined }),
    });
  send({ seq: 100, flags: F.SYN, mss: MSS });
  let synAck: ReturnType<typeof tcpOut> | undefined;
  await until(() => (synAck = g.take().map((r) => tcpOut(packet(r)))[0]) !== undefined);
  const iss = synAck!.seq;
  send({ seq: 101, ack: iss + 1, flags: F.ACK });
  const stream = new Uint8Array(bytes);
  const frames: Rx[] = [];
  /** Stream offset of each data frame's first byte (same order as frames). */
  const offsets: number[] = [];
  let next = 0;
  let fin = false;
  await until(() => {
    let moved = false;
    for (const r of g.take()) {
      // Cut (when large) the way a NIC would: every piece must verify and follow in order.
      const pieces = r.gsoType ? segmentTcp(r.frame, r.gsoSize) : [packet(r)];
      if (r.frame.length > 54) offsets.push(next);
      for (const p of pieces) {
        const t = tcpOut(p);
        if (t.payload.length > 0) {
          expect(((t.seq - iss - 1) >>> 0) - next).toBe(0);
          stream.set(t.payload, next);
          next += t.payload.length;
          moved = true;
        }
        if (t.flags & F.FIN) fin = moved = true;
      }
      if (r.frame.length > 54) frames.push(r);
    }
    if (moved) send({ seq: 101, ack: (iss + 1 + next + (fin ? 1 : 0)) >>> 0, flags: F.ACK });
    return fin;
  }, 15_000);
  return { frames, offsets, stream, received: next };
}

describe('net=user large segments to the guest', () => {
  it('a virtio-net with GUEST_TSO4 gets 1 MiB in a few 64 KiB TSO frames that cut back into the stream', async () => {
    const body = randomBytes(1 << 20);
    const s = await source(body);
    const g = virtioGuest(true);
    const { frames, stream, received } = await download(g, s.port, body.length);
    expect(received).toBe(body.length);
    expect(Buffer.from(stream).equals(body)).toBe(true);
    // One large frame per 64 KiB or so instead of 719 MSS frames.
    expect(frames.length).toBeLessThan(40);
    const large = frames.filter((r) => r.frame.length - 54 > MSS);
    expect(large.length).toBeGreaterThan(0);
    for (const r of large) {
      expect([r.flags & 1, r.gsoType, r.gsoSize, r.hdrLen]).toEqual([1, GSO_TCPV4, MSS, 54]);
      expect(r.frame.length - 54).toBeLessThanOrEqual(65_495);
      // Finishing the partial checksum over the whole frame gives a valid 64 KiB IP packet.
      const t = tcpOut({ data: r.frame, csum: { start: 34, offset: 16 } });
      expect([t.src, t.dst]).toEqual([GATEWAY, GUEST]);
    }
    expect(g.dev.metrics.rx_gso).toBe(large.length);
    expect(g.dev.metrics.rx_segmented).toBe(0);
  });

  it('a virtio-net without the guest offloads gets the same as MSS frames with complete checksums', async () => {
    const body = randomBytes(512 << 10);
    const s = await source(body);
    const g = virtioGuest(false);
    const { frames, stream } = await download(g, s.port, body.length);
    expect(Buffer.from(stream).equals(body)).toBe(true);
    expect(frames.length).toBeGreaterThanOrEqual(Math.ceil(body.length / MSS));
    for (const r of frames) {
      expect([r.gsoType, r.flags & 1]).toEqual([0, 0]);
      expect(r.frame.length).toBeLessThanOrEqual(54 + MSS);
      tcpOut({ data: r.frame }); // throws unless the IP and TCP checksums verify as they are
    }
    expect(g.dev.metrics.rx_segmented).toBeGreaterThan(0);
    expect(g.dev.metrics.rx_gso).toBe(0);
  });
});

describe('net=user cuts its stream where the guest copies by words', () => {
  /**
   * Frames of 4 MSS or more whose payload's guest address and stream offset differ mod 8 (a
   * smaller one may start misaligned: the data after a pause of the host, say).
   */
  const misaligned = (r: Awaited<ReturnType<typeof download>>) =>
    r.frames
      .map((f, i) => ({ f, off: r.offsets[i] }))
      .filter(({ f }) => f.frame.length - 54 >= 4 * MSS)
      .filter(({ f, off }) => (f.addr + HDR + 54 - off) % 8 !== 0);

  it('large segments put each payload byte at its stream offset mod 8 in 64-byte aligned buffers', async () => {
    const body = randomBytes(2 << 20);
    const s = await source(body);
    const g = virtioGuest(true);
    const r = await download(g, s.port, body.length);
    expect(Buffer.from(r.stream).equals(body)).toBe(true);
    // After the 12-byte header: byte 0 of a frame is at 4 mod 8.
    expect(g.dev.rxFrameAlign()).toBe(HDR % 8);
    const large = r.frames.filter((f) => f.frame.length - 54 > MSS);
    expect(large.length).toBeGreaterThan(20);
    expect(misaligned(r)).toEqual([]);
    // Still about one large frame per 64 KiB: the cut moves by at most 7 bytes (plus one MSS
    // segment to align the first, and one each time the host's data ran out mid-stream).
    expect(r.frames.length).toBeLessThan(2 * Math.ceil(body.length / 64_000) + 4);
  });

  it('follows buffers skewed from 8-byte alignment, and ignores buffers that disagree', async () => {
    const body = randomBytes(1 << 20);
    const s = await source(body);
    const skewed = virtioGuest(true, () => 3);
    const r = await download(skewed, s.port, body.length);
    expect(Buffer.from(r.stream).equals(body)).toBe(true);
    expect(skewed.dev.rxFrameAlign()).toBe((HDR + 3) % 8);
    expect(misaligned(r)).toEqual([]);

    // Buffers at 0 and 4 mod 8 in turn: no alignment holds for every frame, none is sought.
    const s2 = await source(body);
    const mixed = virtioGuest(true, (i) => (i % 2) * 4);
    const r2 = await download(mixed, s2.port, body.length);
    expect(Buffer.from(r2.stream).equals(body)).toBe(true);
    expect(mixed.dev.rxFrameAlign()).toBeUndefined();
    // Segments are as long as they can be: whole MSS multiples unless the host's data ran out
    // (aligned cuts would make nearly all of them 2 to 7 bytes short of one).
    const sizes = r2.frames.map((f) => f.frame.length - 54).filter((n) => n > MSS);
    expect(sizes.filter((n) => n % MSS !== 0).length).toBeLessThanOrEqual(sizes.length / 2);
  });
});

describe('net=user large segments: loss and windows', () => {
  /** The guest's handshake to 10.0.2.2:port with the NAT's output collected raw. */
  async function open(port: number, win: number, wscale?: number, mss = MSS) {
    const h = harness();
    cleanup.push(() => h.net.close());
    const sport = 40200;
    h.send(tcp({ sport, dport: port, seq: 1, flags: F.SYN, mss, wscale, win }));
    await until(() => h.got.length > 0);
    const iss = tcpOut(h.take()[0]).seq;
    const ack = (n: number, w = win) =>
      h.send(tcp({ sport, dport: port, seq: 2, ack: (iss + 1 + n) >>> 0, flags: F.ACK, win: w }));
    ack(0);
    /** Data frames since the last call, cut into wire segments: [offset in stream, bytes]. */
    const data = (): { off: number; bytes: Uint8Array; frame: NetPacket }[] =>
      h.take().flatMap((p) =>
        (p.gso ? segmentTcp(p.data, p.gso.size) : [p])
          .map(tcpOut)
          .filter((t) => t.payload.length > 0)
          .map((t) => ({ off: (t.seq - iss - 1) >>> 0, bytes: t.payload, frame: p })),
      );
    return { h, ack, data };
  }

  it('resends only the unacknowledged rest of a partly acknowledged large segment', async () => {
    const body = randomBytes(100_000);
    const s = await source(body);
    const { h, ack, data } = await open(s.port, 65535, 7);
    const first: ReturnType<typeof data> = [];
    await until(() => {
      first.push(...data());
      return first.length > 0 && first.at(-1)!.off + first.at(-1)!.bytes.length === body.length;
    });
    expect(first.at(-1)!.off + first.at(-1)!.bytes.length).toBe(body.length);
    expect(new Set(first.map((d) => d.frame)).size).toBeLessThanOrEqual(3);
    // The guest got the first 30000 bytes of the first segment only; the rest is lost.
    ack(30_000);
    await until(() => (h.net.stats().tcp_retransmit ?? 0) >= 1, 3000);
    await until(() => h.got.length > 0);
    const again = data();
    expect(again[0].off).toBe(30_000);
    expect(again.every((d) => d.off >= 30_000)).toBe(true);
    const resent = Buffer.concat(again.map((d) => d.bytes));
    expect(resent.equals(body.subarray(30_000))).toBe(true);
    // Still in large segments: the 70000 bytes left take two frames, not 48.
    expect(new Set(again.map((d) => d.frame)).size).toBeLessThanOrEqual(2);
    ack(body.length + 1);
  });

  it("sends no byte beyond the guest's window, and more as it acknowledges", async () => {
    const body = randomBytes(200_000);
    const s = await source(body);
    const { ack, data } = await open(s.port, 20_000); // no window scaling: 20000 bytes
    /** Data until the stream reaches `end`, and whatever else comes in the next 50 ms. */
    const upTo = async (end: number) => {
      const got: ReturnType<typeof data> = [];
      const reached = () => got.length > 0 && got.at(-1)!.off + got.at(-1)!.bytes.length >= end;
      await until(() => (got.push(...data()), reached()));
      await new Promise((r) => setTimeout(r, 50));
      got.push(...data());
      return { first: got[0].off, end: got.at(-1)!.off + got.at(-1)!.bytes.length, got };
    };
    const w1 = await upTo(20_000);
    expect([w1.first, w1.end]).toEqual([0, 20_000]);
    // One 20000-byte TSO frame (two if the host's first read was short).
    expect(new Set(w1.got.map((d) => d.frame)).size).toBeLessThanOrEqual(2);
    // 15000 acknowledged: the window slides by that much, no further.
    ack(15_000);
    const w2 = await upTo(35_000);
    expect([w2.first, w2.end]).toEqual([20_000, 35_000]);
    // A window shrunk to 0 holds everything back (until a zero-window probe of one byte).
    ack(35_000, 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(data()).toEqual([]);
    ack(35_000, 65535);
    // The window, but for a rest smaller than an MSS (no sliver while data is in flight).
    const w3 = await upTo(35_000 + 65535 - MSS);
    expect(w3.first).toBe(35_000);
    expect(w3.end).toBeLessThanOrEqual(35_000 + 65535);
  });

  it('sends no sliver into a window with less than an MSS of room while data is in flight', async () => {
    const body = randomBytes(200_000);
    const s = await source(body);
    const { ack, data } = await open(s.port, 20_000); // no window scaling: 20000 bytes
    /** Collects data into `into` until the stream reaches `end`. */
    const upTo = (into: ReturnType<typeof data>, end: number) =>
      until(() => {
        into.push(...data());
        const last = into.at(-1);
        return last !== undefined && last.off + last.bytes.length >= end;
      });
    await upTo([], 20_000);
    // 600 bytes acknowledged: 600 bytes of room, 19400 in flight. A sender without silly
    // window avoidance fills the 600 bytes at once.
    ack(600);
    await new Promise((r) => setTimeout(r, 50));
    expect(data()).toEqual([]);
    // The rest of the flight acknowledged: a full window goes out.
    ack(20_000);
    const more: ReturnType<typeof data> = [];
    await upTo(more, 40_000);
    expect(more[0].off).toBe(20_000);
    ack(body.length + 1);
  });

  it('fills a window smaller than an MSS as soon as half of it is open', async () => {
    const body = randomBytes(10_000);
    const s = await source(body);
    const { h, ack, data } = await open(s.port, 1000); // a 1000-byte window: less than the MSS
    const got: ReturnType<typeof data> = [];
    const upTo = (end: number) =>
      until(() => {
        got.push(...data());
        const last = got.at(-1);
        return last !== undefined && last.off + last.bytes.length >= end;
      });
    await upTo(1000);
    ack(300); // 300 bytes of room: less than half the window, 700 in flight
    await new Promise((r) => setTimeout(r, 50));
    expect(data()).toEqual([]);
    ack(500); // 500 of 1000: half the window, it goes out at once (not on a timeout)
    await upTo(1500);
    expect(got.at(-1)!.off + got.at(-1)!.bytes.length).toBe(1500);
    expect(h.net.stats().tcp_retransmit ?? 0).toBe(0);
    ack(body.length + 1);
  });

  it('cuts at the MSS the guest announced, at most 44 pieces per frame', async () => {
    // Less than tcpSendBuffer (256 KiB): nothing is acknowledged until the end, so the NAT
    // stops reading its socket at that bound, and a larger body arrived whole only when the
    // host's last read happened to bring all of the rest.
    const body = randomBytes(200_000);
    const s = await source(body);
    const { h, ack, data } = await open(s.port, 65535, 7, 536);
    const got: ReturnType<typeof data> = [];
    const tso = new Set<NetPacket>();
    await until(() => {
      for (const p of h.got) if (p.gso) tso.add(p);
      got.push(...data());
      return got.length > 0 && got.at(-1)!.off + got.at(-1)!.bytes.length === body.length;
    });
    expect(Buffer.concat(got.map((d) => d.bytes)).equals(body)).toBe(true);
    expect(tso.size).toBeGreaterThan(0);
    for (const p of tso) {
      expect(p.gso!.size).toBe(536);
      expect(p.data.length - 54).toBeLessThanOrEqual(44 * 536);
    }
    expect(got.every((d) => d.bytes.length <= 536)).toBe(true);
    ack(body.length + 1);
  });
});
