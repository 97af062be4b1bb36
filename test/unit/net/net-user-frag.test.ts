/**
 * net=user's IP fragments with hand-built frames: the guest's fragments reassembled (IPv4 and
 * IPv6's fragment header) and handed to ICMP echo, UDP and TCP; our replies beyond the guest's
 * MTU fragmented; and the bounds — overlaps (teardrop), offset + length beyond 64 KiB, a first
 * fragment without the transport header, too many fragments, the timeout, memory pressure and a
 * flood — each dropped and counted, never thrown, memory bounded.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { get16, internetChecksum, put16 } from '../../../devices/net/offload.js';
import type { NetPacket } from '../../../devices/net/packet.js';
import type { UserNetLimits } from '../../../devices/net/user/config.js';
import { parseIp6, type Ip6 } from '../../../devices/net/user/ipv6.js';
import {
  F,
  GATEWAY,
  eth,
  fragment4,
  fragments4,
  harness,
  ping,
  reassembleOut,
  tcp,
  udp,
  until,
  wire,
} from './user-frames.js';

const open: { close(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

function net(limits: Partial<UserNetLimits> = {}) {
  const h = harness('user', { limits });
  open.push(h.net);
  return h;
}

const s = (h: ReturnType<typeof net>, name: string) => h.net.stats()[name] ?? 0;

/** What every test ends with: nothing thrown inside, nothing left held when all is done. */
function clean(h: ReturnType<typeof net>) {
  expect(s(h, 'drop_internal_error')).toBe(0);
}

/** The echo reply's ICMP message the guest would see, from its reassembled frame. */
const icmpOf = (f: Uint8Array) => f.subarray(34);

describe('net=user IPv4 reassembly', () => {
  it('answers a 4000-byte ping sent in fragments, in any order, with a fragmented reply', () => {
    const h = net();
    const req = ping(GATEWAY, 4000);
    const frags = fragments4(req, 1480, 0x4242);
    expect(frags).toHaveLength(3);
    for (const f of [frags[2], frags[0], frags[1]]) h.send(f);
    const out = h.take();
    // 4008 bytes of ICMP: 1480 + 1480 + 1048 in three frames within the guest's MTU.
    expect(out.map((p) => p.data.length)).toEqual([1514, 1514, 1082]);
    const reply = reassembleOut(out);
    expect(reply[34]).toBe(0); // echo reply
    expect(icmpOf(reply).subarray(4)).toEqual(req.subarray(38)); // id, seq and data echoed
    expect(s(h, 'frag_reassembled')).toBe(1);
    expect(s(h, 'icmp_echo_replies')).toBe(1);
    expect(s(h, 'frag_out_datagrams')).toBe(1);
    expect(s(h, 'frag_out')).toBe(3);
    expect(h.net.stats().frag_datagrams).toBe(0);
    expect(h.net.stats().frag_bytes).toBe(0);
    clean(h);
  });

  it('keeps datagrams apart by identification and ignores an exact repeat', () => {
    const h = net();
    const a = fragments4(ping(GATEWAY, 2000, 1), 1000, 7);
    const b = fragments4(ping(GATEWAY, 2000, 2), 1000, 8);
    h.send(a[0]);
    h.send(b[0]);
    h.send(a[0]); // a repeat: ignored
    h.send(b[1]);
    h.send(b[2]);
    h.send(a[1]);
    expect(h.take()).toHaveLength(2); // b's reply (2 fragments) so far
    h.send(a[2]);
    expect(h.take()).toHaveLength(2);
    expect(s(h, 'frag_duplicate')).toBe(1);
    expect(s(h, 'icmp_echo_replies')).toBe(2);
    clean(h);
  });

  it('carries an 8 KiB UDP datagram to a host socket and its 8 KiB answer back', async () => {
    const sock: Socket = createSocket('udp4');
    open.push(sock);
    const got: Buffer[] = [];
    sock.on('message', (m, r) => {
      got.push(m);
      sock.send(Buffer.from(m).reverse(), r.port, r.address);
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const port = (sock.address() as AddressInfo).port;
    const h = net();
    const data = new Uint8Array(8192).map((_, i) => (i * 13 + 5) & 0xff);
    for (const f of fragments4(udp(40000, port, data), 1480, 99)) h.send(f);
    await until(() => h.got.length >= 6);
    expect(Buffer.concat(got)).toEqual(Buffer.from(data));
    const back = reassembleOut(h.take());
    expect(get16(back, 34 + 4)).toBe(8 + 8192); // UDP length
    expect(back.subarray(42)).toEqual(Uint8Array.from(data).reverse());
    expect(s(h, 'udp_in')).toBe(1);
    clean(h);
  });

  it('reassembles a TCP segment: a stray one gets its RST', () => {
    const h = net();
    const seg = tcp({
      sport: 1234,
      dport: 80,
      seq: 5,
      flags: F.ACK | F.PSH,
      payload: new Uint8Array(100),
    });
    for (const f of fragments4(seg, 40, 3)) h.send(f);
    const out = h.take();
    expect(out).toHaveLength(1);
    expect(wire(out[0])[47] & F.RST).toBe(F.RST);
    expect(s(h, 'frag_reassembled')).toBe(1);
    clean(h);
  });
});

describe('net=user IPv4 fragments, hostile', () => {
  it('drops the whole datagram on an overlap (teardrop), even when the rest arrives', () => {
    const h = net();
    const req = ping(GATEWAY, 64);
    h.send(fragment4(req, 0, 24, 1, true));
    h.send(fragment4(req, 16, 16, 1, true)); // overlaps bytes 16..24
    h.send(fragment4(req, 24, 48, 1, false));
    expect(s(h, 'drop_frag_overlap')).toBe(1);
    // The last fragment started a new datagram, which never completes: nothing answered.
    expect(h.take()).toHaveLength(0);
    // An overlapping last fragment (the classic teardrop: end inside what came before).
    h.send(fragment4(req, 0, 48, 2, true));
    h.send(fragment4(req, 40, 8, 2, false));
    expect(s(h, 'drop_frag_overlap')).toBe(2);
    // Two "last" fragments with different ends.
    h.send(fragment4(req, 48, 24, 3, false));
    h.send(fragment4(req, 48, 16, 3, false));
    expect(s(h, 'drop_frag_overlap')).toBe(3);
    expect(h.take()).toHaveLength(0);
    clean(h);
  });

  it('drops offset + length beyond 64 KiB, odd middle lengths and header-less first fragments', () => {
    const h = net();
    const big = ping(GATEWAY, 200);
    // offset 65520 + 200 bytes: the datagram would exceed 65535.
    const f = fragment4(big, 0, 200, 9, false);
    put16(f, 20, 65520 >> 3);
    put16(f, 24, 0);
    put16(f, 24, internetChecksum(f, 14, 34));
    h.send(f);
    expect(s(h, 'drop_frag_too_big')).toBe(1);
    h.send(fragment4(big, 0, 100, 10, true)); // 100 is not a multiple of 8
    expect(s(h, 'drop_frag_length')).toBe(1);
    // A TCP header split over two fragments: the first holds 8 of its 20 bytes.
    const seg = tcp({ sport: 1, dport: 80, seq: 1, flags: F.ACK, payload: new Uint8Array(40) });
    h.send(fragment4(seg, 0, 8, 11, true));
    h.send(fragment4(seg, 8, 52, 11, false));
    expect(s(h, 'drop_frag_header_split')).toBe(1);
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats().frag_datagrams).toBe(1); // only the split segment's tail waits
    clean(h);
  });

  it('bounds fragments per datagram', () => {
    const h = net({ fragPerDatagram: 4 });
    const req = ping(GATEWAY, 400);
    const frags = fragments4(req, 64, 5);
    for (const f of frags) h.send(f);
    expect(s(h, 'drop_frag_count')).toBe(1);
    expect(s(h, 'icmp_echo_replies')).toBe(0);
    // Within the bound, the same datagram goes through.
    for (const f of fragments4(req, 104, 6)) h.send(f);
    expect(s(h, 'icmp_echo_replies')).toBe(1);
    clean(h);
  });

  it('drops a datagram that never completes after the timeout, and counts it', async () => {
    const h = net({ fragTimeoutMs: 50 });
    h.send(fragments4(ping(GATEWAY, 3000), 1480, 77)[0]);
    expect(h.net.stats().frag_datagrams).toBe(1);
    expect(h.net.stats().frag_bytes).toBeGreaterThan(1480);
    await until(() => s(h, 'drop_frag_timeout') === 1, 2000);
    expect(h.net.stats().frag_datagrams).toBe(0);
    expect(h.net.stats().frag_bytes).toBe(0);
    clean(h);
  });

  it('holds at most fragBytes under memory pressure: the oldest datagrams give way', () => {
    const h = net({ fragBytes: 6000 });
    for (let id = 1; id <= 10; id++) {
      h.send(fragments4(ping(GATEWAY, 4000, id), 1480, id)[0]);
      expect(h.net.stats().frag_bytes).toBeLessThanOrEqual(6000);
    }
    expect(s(h, 'drop_frag_evicted')).toBeGreaterThan(0);
    // A datagram that alone needs more than the bound is dropped, not held.
    for (const f of fragments4(ping(GATEWAY, 8000, 50), 1480, 50)) h.send(f);
    expect(s(h, 'drop_frag_memory')).toBeGreaterThan(0);
    expect(h.net.stats().frag_bytes).toBeLessThanOrEqual(6000);
    // One that fits still completes.
    for (const f of fragments4(ping(GATEWAY, 4000, 60), 1480, 60)) h.send(f);
    expect(s(h, 'icmp_echo_replies')).toBe(1);
    clean(h);
  });

  it('refuses a fragment with partial-checksum metadata (it cannot be finished per piece)', () => {
    const h = net();
    h.send(fragments4(ping(GATEWAY, 3000), 1480, 1)[0], { csum: { start: 34, offset: 2 } });
    expect(s(h, 'drop_ip_fragment_offloaded')).toBe(1);
    expect(h.net.stats().frag_datagrams).toBe(0);
    clean(h);
  });
});

/** A guest IPv6 packet with the transport message `l4` (checksum at csumAt filled in). */
const GUEST6 = parseIp6('fec0::5054:ff:fe12:3456')!;
const GW6 = parseIp6('fec0::2')!;

function sum6(src: Ip6, dst: Ip6, proto: number, l4: Uint8Array): number {
  const ph = new Uint8Array(40);
  ph.set(src, 0);
  ph.set(dst, 16);
  put16(ph, 34, l4.length);
  ph[39] = proto;
  let x = 0;
  for (const b of [ph, l4])
    for (let i = 0; i < b.length; i += 2) x += (b[i] << 8) | (b[i + 1] ?? 0);
  while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
  return ~x & 0xffff;
}

function ping6(size: number, type = 128, hop = 64): Uint8Array {
  const m = new Uint8Array(8 + size).map((_, i) => (i * 3) & 0xff);
  m.set([type, 0, 0, 0, 0x12, 0x34, 0, 1]);
  put16(m, 2, sum6(GUEST6, GW6, 58, m));
  const p = new Uint8Array(40);
  p[0] = 0x60;
  p[6] = 58;
  p[7] = hop;
  p.set(GUEST6, 8);
  p.set(GW6, 24);
  return Uint8Array.from([...p, ...m]);
}

/** Fragment [offset, offset + len) of an IPv6 packet's payload, with a fragment header. */
function frag6(pkt: Uint8Array, offset: number, len: number, id: number, more?: boolean) {
  const body = pkt.subarray(40 + offset, 40 + offset + len);
  const p = new Uint8Array(48 + body.length);
  p.set(pkt.subarray(0, 40), 0);
  p[6] = 44;
  put16(p, 4, 8 + body.length);
  p[40] = pkt[6];
  const m = more ?? offset + len < pkt.length - 40;
  put16(p, 42, offset | (m ? 1 : 0));
  put16(p, 44, id >>> 16);
  put16(p, 46, id & 0xffff);
  p.set(body, 48);
  return eth(0x86dd, p);
}

/** Our IPv6 fragments put back together (written independently), checksum verified. */
function reassemble6(out: NetPacket[]): Uint8Array {
  const parts = out.map((p) => {
    const d = p.data;
    expect(d.length).toBeLessThanOrEqual(1514);
    expect(d[14 + 6]).toBe(44);
    const f = get16(d, 14 + 42);
    return {
      d,
      off: f & ~7,
      more: (f & 1) === 1,
      id: get16(d, 14 + 44) * 65536 + get16(d, 14 + 46),
    };
  });
  expect(new Set(parts.map((p) => p.id)).size).toBe(1);
  parts.sort((a, b) => a.off - b.off);
  const body: number[] = [];
  for (const [i, p] of parts.entries()) {
    expect(p.off).toBe(body.length);
    expect(p.more).toBe(i < parts.length - 1);
    body.push(...p.d.subarray(14 + 48, 14 + 40 + get16(p.d, 14 + 4)));
  }
  const l4 = Uint8Array.from(body);
  const d = parts[0].d;
  const proto = d[14 + 40];
  expect(sum6(d.slice(22, 38), d.slice(38, 54), proto, l4)).toBe(0);
  return l4;
}

describe('net=user IPv6 fragments', () => {
  it('answers a 4000-byte ping6 in fragments with a fragmented reply', () => {
    const h = net();
    const req = ping6(4000);
    const n = req.length - 40;
    for (const o of [3696, 2464, 0, 1232]) h.send(frag6(req, o, Math.min(1232, n - o), 0xabcdef));
    const l4 = reassemble6(h.take());
    expect(l4[0]).toBe(129);
    expect(l4.subarray(4)).toEqual(req.subarray(44));
    expect(s(h, 'icmp6_echo_replies')).toBe(1);
    expect(s(h, 'frag_reassembled')).toBe(1);
    clean(h);
  });

  it('takes an atomic fragment as a whole packet; drops overlaps and fragmented NDP', () => {
    const h = net();
    const small = ping6(56);
    h.send(frag6(small, 0, small.length - 40, 1, false));
    expect(s(h, 'icmp6_echo_replies')).toBe(1);
    expect(h.take()).toHaveLength(1);
    const req = ping6(200);
    h.send(frag6(req, 0, 104, 2, true));
    h.send(frag6(req, 96, 112, 2, false));
    expect(s(h, 'drop_frag_overlap')).toBe(1);
    // A router solicitation (hop limit 255) in two fragments: never answered (RFC 6980).
    const rs = ping6(24, 133, 255);
    h.send(frag6(rs, 0, 16, 3, true));
    h.send(frag6(rs, 16, 16, 3, false));
    expect(s(h, 'drop_ndp_fragmented')).toBe(1);
    expect(h.take()).toHaveLength(0);
    clean(h);
  });
});

describe('net=user fragment flood', () => {
  it('5,000 never-completed fragments: the table stays bounded and a real ping still works', () => {
    const lim = { fragDatagrams: 64, fragBytes: 256 * 1024 };
    const h = net(lim);
    let x = 7;
    const rnd = (n: number) => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let i = 0; i < 5000; i++) {
      const f = fragment4(
        udp(1000, 2000, new Uint8Array(1400)),
        8 * rnd(8),
        1392,
        rnd(65536),
        true,
      );
      h.send(f);
      expect(h.net.stats().frag_datagrams).toBeLessThanOrEqual(lim.fragDatagrams);
      expect(h.net.stats().frag_bytes).toBeLessThanOrEqual(lim.fragBytes);
    }
    expect(s(h, 'drop_frag_evicted')).toBeGreaterThan(4000);
    for (const f of fragments4(ping(GATEWAY, 4000), 1480, 1)) h.send(f);
    expect(reassembleOut(h.take())[34]).toBe(0);
    clean(h);
  });
});
