/**
 * Hand-built guest frames for the net=user unit tests, and a harness that plays the guest's NIC
 * against a UserNetwork: frames in through send(), frames out collected (partial checksums
 * finished and verified, as the NIC would).
 */
import { finishChecksum, get16, internetChecksum, put16 } from '../../../devices/net/offload.js';
import type { NetPacket } from '../../../devices/net/packet.js';
import { UserNetwork, type UserNetOptions } from '../../../devices/net/user/index.js';
import type { EchoMessage, EchoSocketOpener } from '../../../devices/net/user/icmp-relay.js';
import { parseIpv4 } from '../../../devices/net/user/ipv4.js';
import { parseIp6, type Ip6 } from '../../../devices/net/user/ipv6.js';
import { parseTcp } from '../../../devices/net/user/tcp-segment.js';

export const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
export const GW_MAC = Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02);
export const BCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export const ip = (s: string): number =>
  s.split('.').reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);
export const GUEST = ip('10.0.2.15');
export const GATEWAY = ip('10.0.2.2');
export const DNS = ip('10.0.2.3');

function put32(d: Uint8Array, o: number, v: number): void {
  put16(d, o, v >>> 16);
  put16(d, o + 2, v & 0xffff);
}
export const get32 = (d: Uint8Array, o: number): number =>
  ((d[o] << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3]) >>> 0;

export function eth(type: number, payload: Uint8Array, dst = GW_MAC, src = GUEST_MAC): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(src, 6);
  put16(f, 12, type);
  f.set(payload, 14);
  return f;
}

export interface IpOpts {
  src?: number;
  dst?: number;
  ihl?: number;
  totLen?: number;
  flagsFrag?: number;
  badChecksum?: boolean;
}

/** An IPv4 packet (header checksum right unless badChecksum). */
export function ipv4(proto: number, l4: Uint8Array, o: IpOpts = {}): Uint8Array {
  const p = new Uint8Array(20 + l4.length);
  p[0] = 0x40 | (o.ihl ?? 5);
  put16(p, 2, o.totLen ?? p.length);
  put16(p, 6, o.flagsFrag ?? 0x4000);
  p[8] = 64;
  p[9] = proto;
  put32(p, 12, o.src ?? GUEST);
  put32(p, 16, o.dst ?? GATEWAY);
  put16(p, 10, internetChecksum(p, 0, 20) ^ (o.badChecksum ? 1 : 0));
  p.set(l4, 20);
  return p;
}

function pseudo(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

export function udp(sport: number, dport: number, payload: Uint8Array, src = GUEST, dst = GATEWAY) {
  const u = new Uint8Array(8 + payload.length);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, u.length);
  u.set(payload, 8);
  put16(u, 6, internetChecksum(u, 0, u.length, pseudo(src, dst, 17, u.length)) || 0xffff);
  return eth(0x0800, ipv4(17, u, { src, dst }));
}

export interface TcpOpts {
  sport: number;
  dport: number;
  seq: number;
  ack?: number;
  flags: number;
  win?: number;
  mss?: number;
  wscale?: number;
  payload?: Uint8Array;
  src?: number;
  dst?: number;
  /** Data offset override in bytes (hostile header lengths). */
  doff?: number;
  badChecksum?: boolean;
}

export const F = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 };

export function tcp(o: TcpOpts): Uint8Array {
  const opts: number[] = [];
  if (o.mss !== undefined) opts.push(2, 4, o.mss >> 8, o.mss & 0xff);
  if (o.wscale !== undefined) opts.push(1, 3, 3, o.wscale);
  const hl = 20 + opts.length;
  const payload = o.payload ?? new Uint8Array(0);
  const t = new Uint8Array(hl + payload.length);
  put16(t, 0, o.sport);
  put16(t, 2, o.dport);
  put32(t, 4, o.seq >>> 0);
  put32(t, 8, (o.ack ?? 0) >>> 0);
  t[12] = ((o.doff ?? hl) / 4) << 4;
  t[13] = o.flags;
  put16(t, 14, o.win ?? 65535);
  t.set(opts, 20);
  t.set(payload, hl);
  const src = o.src ?? GUEST;
  const dst = o.dst ?? GATEWAY;
  put16(
    t,
    16,
    internetChecksum(t, 0, t.length, pseudo(src, dst, 6, t.length)) ^ (o.badChecksum ? 1 : 0),
  );
  return eth(0x0800, ipv4(6, t, { src, dst }));
}

/** A received frame, its partial checksum finished and every checksum verified. */
export function wire(p: NetPacket): Uint8Array {
  const d = p.data.slice();
  if (p.csum) finishChecksum(d, p.csum.start, p.csum.offset);
  // A fragment's transport checksum covers the whole datagram: see reassembleOut.
  if (get16(d, 12) === 0x0800 && (get16(d, 20) & 0x3fff) === 0) {
    const ihl = (d[14] & 0xf) * 4;
    if (internetChecksum(d, 14, 14 + ihl) !== 0) throw new Error('bad IP checksum from the NAT');
    const proto = d[23];
    const l4 = 14 + ihl;
    const len = get16(d, 16) - ihl;
    const seed = proto === 1 ? 0 : pseudo(get32(d, 26), get32(d, 30), proto, len);
    if (internetChecksum(d, l4, l4 + len, seed) !== 0)
      throw new Error('bad L4 checksum from the NAT');
  }
  return d;
}

/** Fields of a TCP frame the NAT sent (checksums verified first), with its raw options. */
export function tcpOut(p: NetPacket) {
  const d = wire(p);
  const ip = parseIpv4(d, 14, { verify: true, gso: false });
  if (typeof ip === 'string') throw new Error(ip);
  const t = parseTcp(d, ip, true);
  if (typeof t === 'string') throw new Error(t);
  const options = d.slice(ip.l4 + 20, ip.end - t.payload.length);
  return { ...t, src: ip.src, dst: ip.dst, options, payload: t.payload.slice() };
}

/**
 * A UserNetwork with a fake NIC: `got` holds the frames it sent to the guest. No host ICMP
 * socket unless `opts.echoSocket` gives one (mockEcho), so no test pings the host's network.
 */
export function harness(spec = 'user', opts: UserNetOptions = {}) {
  const net = new UserNetwork(spec, { resolver: null, echoSocket: null, ...opts });
  const got: NetPacket[] = [];
  net.onReceive = (p) => got.push(p);
  const send = (data: Uint8Array, meta: Partial<NetPacket> = {}) => net.send({ data, ...meta });
  /** Frames received since the last call. */
  const take = (): NetPacket[] => got.splice(0);
  return { net, got, send, take };
}

/** Waits until `cond` holds (host sockets answer on the event loop). */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An ICMP echo request (id 0x1234, sequence `seq`) with `size` bytes of patterned data. */
export function ping(dst = GATEWAY, size = 56, seq = 1): Uint8Array {
  const m = new Uint8Array(8 + size);
  m[0] = 8;
  m.set([0x12, 0x34, seq >> 8, seq & 0xff], 4);
  for (let i = 8; i < m.length; i++) m[i] = (i * 7) & 0xff;
  put16(m, 2, internetChecksum(m, 0, m.length));
  return eth(0x0800, ipv4(1, m, { dst }));
}

/**
 * A fragment of the IPv4 packet in `frame` (as udp(), tcp(), ping() build it): bytes
 * [offset, offset + len) of its payload, with the given identification; `more` defaults to
 * "not the end of the payload". Header checksum right, flags DF clear.
 */
export function fragment4(
  frame: Uint8Array,
  offset: number,
  len: number,
  id: number,
  more = offset + len < frame.length - 34,
): Uint8Array {
  const p = frame.slice(14, 34);
  const body = frame.subarray(34 + offset, 34 + offset + len);
  const f = new Uint8Array(20 + body.length);
  f.set(p, 0);
  put16(f, 2, f.length);
  put16(f, 4, id);
  put16(f, 6, (more ? 0x2000 : 0) | (offset >> 3));
  put16(f, 10, 0);
  put16(f, 10, internetChecksum(f, 0, 20));
  f.set(body, 20);
  return eth(0x0800, f, frame.slice(0, 6), frame.slice(6, 12));
}

/** The IPv4 packet in `frame` cut into fragments of `size` payload bytes (a multiple of 8). */
export function fragments4(frame: Uint8Array, size: number, id: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = 0; o < frame.length - 34; o += size) {
    out.push(fragment4(frame, o, Math.min(size, frame.length - 34 - o), id));
  }
  return out;
}

/**
 * The NAT's IPv4 fragments put back together as the guest's stack would (written here, not
 * taken from the code under test): each fragment's header checked, no gaps or overlaps, the
 * rebuilt frame's checksums verified by wire(). Throws if they do not make one datagram.
 */
export function reassembleOut(frames: NetPacket[]): Uint8Array {
  const parts = frames.map((p) => {
    const d = p.data;
    if (p.gso || p.csum) throw new Error('a fragment with offload metadata');
    if (d.length > 1514) throw new Error(`fragment of ${d.length} bytes exceeds the MTU`);
    if (internetChecksum(d, 14, 34) !== 0) throw new Error('bad fragment header checksum');
    const ff = get16(d, 20);
    return { d, id: get16(d, 18), off: (ff & 0x1fff) * 8, more: (ff & 0x2000) !== 0 };
  });
  if (new Set(parts.map((p) => p.id)).size !== 1) throw new Error('fragments of several datagrams');
  parts.sort((a, b) => a.off - b.off);
  let at = 0;
  const body: Uint8Array[] = [];
  for (const [i, p] of parts.entries()) {
    if (p.off !== at) throw new Error(`gap or overlap at ${at}`);
    if (p.more !== i < parts.length - 1) throw new Error('MF wrong');
    const b = p.d.subarray(34, 14 + get16(p.d, 16));
    if (p.more && b.length % 8) throw new Error('a middle fragment not a multiple of 8');
    body.push(b);
    at += b.length;
  }
  const f = new Uint8Array(34 + at);
  f.set(parts[0].d.subarray(0, 34), 0);
  let o = 34;
  for (const b of body) {
    f.set(b, o);
    o += b.length;
  }
  put16(f, 16, 20 + at);
  put16(f, 20, 0);
  put16(f, 24, 0);
  put16(f, 24, internetChecksum(f, 14, 34));
  return wire({ data: f });
}

/** Folded one's-complement sum (no complement), written independently of offload.ts. */
export function sum16(...parts: ArrayLike<number>[]): number {
  let s = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i += 2) s += (p[i] << 8) | (i + 1 < p.length ? p[i + 1] : 0);
  }
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** An echo request the NAT handed to a mock host socket. */
export interface SentEcho {
  v6: boolean;
  addr: string;
  seq: number;
  payload: Uint8Array;
  ttl: number;
}

/**
 * A host ICMP echo socket played by the test: `sent` records what the NAT sent through it,
 * `deliver` plays what the host socket would hand back (a reply or an error). `fail` makes
 * opening throw (no addon, sockets refused); `sendError` makes send throw with that code.
 */
export function mockEcho(o: { fail?: string; sendError?: string; kind?: string } = {}) {
  const sent: SentEcho[] = [];
  const handlers: ((m: EchoMessage) => void)[] = [];
  let opened = 0;
  let closed = 0;
  const opener: EchoSocketOpener = (v6, onMessage) => {
    opened++;
    if (o.fail) throw new Error(o.fail);
    handlers[v6 ? 1 : 0] = onMessage;
    return {
      kind: o.kind ?? 'dgram',
      send(addr, seq, payload, ttl) {
        if (o.sendError) throw Object.assign(new Error(o.sendError), { code: o.sendError });
        sent.push({ v6, addr, seq, payload: payload.slice(), ttl });
      },
      close() {
        closed++;
      },
    };
  };
  /** What the host socket of that family receives (defaults: an echo reply, TTL 57). */
  const deliver = (v6: boolean, m: Partial<EchoMessage> & { from: string; seq: number }) =>
    handlers[v6 ? 1 : 0]({
      type: v6 ? 129 : 0,
      code: 0,
      payload: null,
      ttl: 57,
      info: 0,
      ...m,
    });
  /** The reply a host would send to sent[i]: same address, sequence and data. */
  const reply = (i: number, extra: Partial<EchoMessage> = {}) =>
    deliver(sent[i].v6, {
      from: sent[i].addr,
      seq: sent[i].seq,
      payload: sent[i].payload,
      ...extra,
    });
  return {
    opener,
    sent,
    deliver,
    reply,
    get opened() {
      return opened;
    },
    get closed() {
      return closed;
    },
  };
}

/** An ICMP echo request from the guest with the given identifier, sequence and data size. */
export function pingId(dst: number, id: number, seq: number, size = 56, ttl = 64): Uint8Array {
  const f = ping(dst, size, seq);
  put16(f, 38, id);
  put16(f, 36, 0);
  put16(f, 36, internetChecksum(f, 34, f.length));
  f[22] = ttl;
  put16(f, 24, 0);
  put16(f, 24, internetChecksum(f, 14, 34));
  return f;
}

/** The guest's SLAAC address (from GUEST_MAC) and the gateway, in fec0::/64. */
export const GUEST6 = parseIp6('fec0::5054:ff:fe12:3456')!;
export const GW6 = parseIp6('fec0::2')!;

/** The IPv6 pseudo-header's bytes (RFC 8200 8.1), for sum16. */
export const pseudo6 = (src: Ip6, dst: Ip6, proto: number, len: number): number[] => [
  ...src,
  ...dst,
  (len >>> 24) & 0xff,
  (len >>> 16) & 0xff,
  (len >>> 8) & 0xff,
  len & 0xff,
  0,
  0,
  0,
  proto,
];

export interface V6Opts {
  src?: Ip6;
  dst?: Ip6;
  hop?: number;
  payloadLen?: number;
  badChecksum?: boolean;
}

/** Ethernet + IPv6 around `l4`, whose checksum (at `csumAt`, -1: none) is filled in. */
export function ipv6(proto: number, l4: Uint8Array, csumAt: number, o: V6Opts = {}): Uint8Array {
  const src = o.src ?? GUEST6;
  const dst = o.dst ?? GW6;
  const p = new Uint8Array(40 + l4.length);
  p[0] = 0x60;
  put16(p, 4, o.payloadLen ?? l4.length);
  p[6] = proto;
  p[7] = o.hop ?? 64;
  p.set(src, 8);
  p.set(dst, 24);
  const t = l4.slice();
  if (csumAt >= 0) {
    put16(t, csumAt, 0);
    put16(t, csumAt, ~sum16(pseudo6(src, dst, proto, t.length), t) & 0xffff);
    if (o.badChecksum) t[csumAt] ^= 1;
  }
  p.set(t, 40);
  return eth(0x86dd, p);
}

/** A UDP datagram over IPv6 from the guest (default GUEST6 → GW6), checksum right. */
export function udp6(sport: number, dport: number, data: ArrayLike<number>, o: V6Opts = {}) {
  const u = new Uint8Array(8 + data.length);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, u.length);
  u.set(data, 8);
  return ipv6(17, u, 6, o);
}

/**
 * An IPv6 frame the NAT sent, checked (throws if not): IPv6 header sane, transport checksum
 * right (a partial one finished as a NIC would).
 */
export function checked6(p: NetPacket) {
  const ETH = 14;
  const d = p.data.slice();
  if (get16(d, 12) !== 0x86dd || d[ETH] >> 4 !== 6) throw new Error('not an IPv6 frame');
  const len = get16(d, ETH + 4);
  if (ETH + 40 + len !== d.length) throw new Error("IPv6 payload length is not the frame's");
  const src = d.slice(ETH + 8, ETH + 24);
  const dst = d.slice(ETH + 24, ETH + 40);
  const proto = d[ETH + 6];
  const l4 = d.subarray(ETH + 40);
  if (p.csum) {
    const at = p.csum.start + p.csum.offset - ETH - 40;
    put16(l4, at, 0);
    put16(l4, at, ~sum16(pseudo6(src, dst, proto, l4.length), l4) & 0xffff);
  }
  if (sum16(pseudo6(src, dst, proto, l4.length), l4) !== 0xffff) {
    throw new Error('bad L4 checksum from the NAT');
  }
  return { d, src, dst, proto, hop: d[ETH + 7], l4: l4.slice() };
}

/** A DHCP message from the guest (BOOTP request, message type `type`, then `opts`), broadcast. */
export function dhcp(type: number, opts: number[] = [], xid = 0x11223344): Uint8Array {
  const m = new Uint8Array(240 + opts.length + 4);
  m.set([1, 1, 6, 0]);
  m.set([xid >>> 24, (xid >> 16) & 0xff, (xid >> 8) & 0xff, xid & 0xff], 4);
  m.set(GUEST_MAC, 28);
  m.set([0x63, 0x82, 0x53, 0x63], 236);
  m.set([53, 1, type, ...opts, 255], 240);
  return udp(68, 67, m, 0, 0xffffffff);
}

/** DHCP options of a reply frame (code → bytes). */
export function dhcpOptions(d: Uint8Array): Map<number, number[]> {
  const o = new Map<number, number[]>();
  for (let i = 42 + 240; i < d.length && d[i] !== 255;) {
    if (d[i] === 0) {
      i++;
      continue;
    }
    o.set(d[i], [...d.subarray(i + 2, i + 2 + d[i + 1])]);
    i += 2 + d[i + 1];
  }
  return o;
}
