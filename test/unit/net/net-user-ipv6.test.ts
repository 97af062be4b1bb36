/**
 * net=user's IPv6 with hand-built guest frames, layer by layer: addresses and the IPv6 header
 * (ipv6.ts), ICMPv6 echo (icmpv6.ts), neighbour discovery and router advertisements (ndp.ts),
 * TCP and UDP over IPv6 proxied to host servers on ::1, DNS at fec0::3 — and hostile frames at each layer, dropped and
 * counted, never thrown (drop_internal_error would show a throw caught by send()).
 * Checksums are computed here independently of the code under test.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { createSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { get16, put16 } from '../../../devices/net/offload.js';
import { GSO_TCPV6, type NetPacket } from '../../../devices/net/packet.js';
import { formatIp6, parseIp6, parseIpv6, type Ip6 } from '../../../devices/net/user/ipv6.js';
import {
  F,
  GUEST6,
  GUEST_MAC,
  GW6,
  GW_MAC,
  checked6 as checked,
  harness,
  ipv6,
  mockEcho,
  udp6,
  until,
  type V6Opts,
} from './user-frames.js';

const GUEST_LL = parseIp6('fe80::5054:ff:fe12:3456')!;
const GW_LL = parseIp6('fe80::2')!;
const UNSPEC = new Uint8Array(16);
const ETH = 14;

const icmp6 = (type: number, body: number[], o: V6Opts = {}) =>
  ipv6(58, Uint8Array.of(type, 0, 0, 0, ...body), 2, o);

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

function net(spec = 'user') {
  const h = harness(spec);
  cleanup.push(() => h.net.close());
  return h;
}

const noThrows = (h: ReturnType<typeof harness>) =>
  expect(h.net.stats().drop_internal_error ?? 0).toBe(0);

describe('ipv6.ts', () => {
  it('parses and formats addresses; refuses malformed ones', () => {
    expect(formatIp6(parseIp6('fec0::2')!)).toBe('fec0:0:0:0:0:0:0:2');
    expect(formatIp6(parseIp6('::')!)).toBe('0:0:0:0:0:0:0:0');
    expect(formatIp6(parseIp6('1:2:3:4:5:6:7:8')!)).toBe('1:2:3:4:5:6:7:8');
    for (const bad of [
      '1::2::3',
      '1:2:3',
      '12345::',
      'g::1',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4::5:6:7:8',
    ])
      expect(parseIp6(bad)).toBeUndefined();
  });

  it('checks the header: runt, version, payload length, extension headers, GSO length 0', () => {
    const ok = icmp6(128, [0, 1, 0, 1]);
    const p = parseIpv6(ok, ETH, false);
    expect(typeof p).toBe('object');
    if (typeof p === 'object') expect([p.proto, p.l4, p.end]).toEqual([58, ETH + 40, ok.length]);
    expect(parseIpv6(ok.subarray(0, ETH + 39), ETH, false)).toBe('ip6_runt');
    const v4 = ok.slice();
    v4[ETH] = 0x45;
    expect(parseIpv6(v4, ETH, false)).toBe('ip6_version');
    expect(parseIpv6(icmp6(128, [0, 1, 0, 1], { payloadLen: 9 }), ETH, false)).toBe(
      'ip6_payload_length',
    );
    expect(parseIpv6(icmp6(128, [0, 1, 0, 1], { payloadLen: 0 }), ETH, true)).toMatchObject({
      end: ok.length,
    });
    for (const ext of [0, 43, 50, 51, 60]) {
      expect(parseIpv6(ipv6(ext, new Uint8Array(16), -1), ETH, false)).toBe('ip6_extension_header');
    }
  });
});

describe('ICMPv6 echo (icmpv6.ts)', () => {
  it('answers ping6 to fec0::2, fec0::3 and fe80::2 with the same id, sequence and data', () => {
    const h = net();
    for (const to of ['fec0::2', 'fec0::3', 'fe80::2']) {
      h.send(icmp6(128, [0x12, 0x34, 0, 7, 1, 2, 3, 4, 5], { dst: parseIp6(to) }));
      const [r] = h.take();
      const c = checked(r);
      expect(formatIp6(c.src)).toBe(formatIp6(parseIp6(to)!));
      expect(formatIp6(c.dst)).toBe(formatIp6(GUEST6));
      expect(Array.from(c.l4)).toEqual([129, 0, c.l4[2], c.l4[3], 0x12, 0x34, 0, 7, 1, 2, 3, 4, 5]);
      expect(Array.from(c.d.subarray(0, 6))).toEqual(Array.from(GUEST_MAC));
    }
    expect(h.net.stats().icmp6_echo_replies).toBe(3);
  });

  it('drops bad checksums, runts, echo to other hosts (no host socket) and unknown types, counting each', () => {
    const h = net();
    h.send(icmp6(128, [0, 1, 0, 1], { badChecksum: true }));
    h.send(icmp6(128, [0, 1, 0, 1], { dst: parseIp6('2001:db8::1') }));
    h.send(icmp6(130, [0, 0, 0, 0])); // an MLD query: nothing for us
    h.send(ipv6(58, Uint8Array.of(128, 0), -1)); // 2 bytes of ICMPv6
    h.send(icmp6(128, [])); // an echo request without id/sequence
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats()).toMatchObject({
      drop_icmp6_checksum: 1,
      drop_icmp6_not_relayed: 1,
      drop_icmp6_unhandled: 1,
      drop_icmp6_runt: 2,
    });
    noThrows(h);
  });

  it('relays ping6 beyond the network through the host socket; reply and errors mapped back', () => {
    const m = mockEcho();
    const h = harness('user', { echoSocket: m.opener });
    cleanup.push(() => h.net.close());
    const dst = parseIp6('2001:db8::1')!;
    const req = icmp6(128, [0xab, 0xcd, 0, 3, 9, 8, 7, 6, 5], { dst, hop: 33 });
    h.send(req);
    expect(m.sent).toHaveLength(1);
    expect(m.sent[0]).toMatchObject({ v6: true, addr: '2001:db8:0:0:0:0:0:1', ttl: 33 });
    expect(Array.from(m.sent[0].payload)).toEqual([9, 8, 7, 6, 5]);
    m.reply(0, { from: '2001:db8::1', ttl: 60 });
    const c = checked(h.take()[0]);
    expect(formatIp6(c.src)).toBe(formatIp6(dst));
    expect(formatIp6(c.dst)).toBe(formatIp6(GUEST6));
    expect(c.hop).toBe(59);
    expect(Array.from(c.l4)).toEqual([129, 0, c.l4[2], c.l4[3], 0xab, 0xcd, 0, 3, 9, 8, 7, 6, 5]);
    // Destination unreachable from a router, quoting the guest's IPv6 header and echo header.
    h.send(req);
    m.deliver(true, { from: '2001:db8:ffff::1', type: 1, code: 3, seq: m.sent[1].seq });
    const e = checked(h.take()[0]);
    expect(formatIp6(e.src)).toBe(formatIp6(parseIp6('2001:db8:ffff::1')!));
    expect(Array.from(e.l4.subarray(0, 2))).toEqual([1, 3]);
    expect(Array.from(e.l4.subarray(8))).toEqual(Array.from(req.subarray(ETH, ETH + 48)));
    // Packet too big is the host's path MTU, not relayed.
    h.send(req);
    m.deliver(true, { from: '2001:db8::1', type: 2, code: 0, seq: m.sent[2].seq, info: 1280 });
    expect(h.take()).toHaveLength(0);
    for (const to of ['fec0::99', 'fe80::9', 'ff02::1', '::1', '::', '::ffff:c000:201'])
      h.send(icmp6(128, [0, 1, 0, 1], { dst: parseIp6(to) }));
    expect(m.sent).toHaveLength(3);
    expect(h.net.stats()).toMatchObject({
      icmp6_echo_relayed: 3,
      icmp6_echo_relayed_replies: 1,
      icmp6_errors_relayed: 1,
      drop_icmp_frag_needed: 1,
      drop_icmp6_no_route: 6,
    });
    noThrows(h);
    const r = harness('user,restrict=on', { echoSocket: m.opener });
    cleanup.push(() => r.net.close());
    r.send(req);
    expect(m.sent).toHaveLength(3);
    expect(r.net.stats().drop_restricted).toBe(1);
  });
});

describe('neighbour discovery (ndp.ts)', () => {
  const solicitedNode = (a: Ip6) => parseIp6(`ff02::1:ff00:0`)!.map((b, i) => (i >= 13 ? a[i] : b));
  const ns = (target: Ip6, o: V6Opts = {}, opts: number[] = [1, 1, ...GUEST_MAC]) =>
    icmp6(135, [0, 0, 0, 0, ...target, ...opts], { hop: 255, dst: solicitedNode(target), ...o });

  it('a router solicitation gets an advertisement of fec0::/64 (SLAAC), MTU and DNS, from fe80::2', () => {
    const h = net();
    h.send(
      icmp6(133, [0, 0, 0, 0, 1, 1, ...GUEST_MAC], {
        hop: 255,
        src: GUEST_LL,
        dst: parseIp6('ff02::2'),
      }),
    );
    const [r] = h.take();
    const c = checked(r);
    expect([c.hop, formatIp6(c.src), formatIp6(c.dst)]).toEqual([
      255,
      formatIp6(GW_LL),
      formatIp6(GUEST_LL),
    ]);
    const l4 = c.l4;
    expect([l4[0], l4[1], l4[4], get16(l4, 6)]).toEqual([134, 0, 64, 1800]);
    // options: source link-layer address, MTU, prefix information, RDNSS
    const opts = new Map<number, Uint8Array>();
    for (let o = 16; o < l4.length; o += l4[o + 1] * 8)
      opts.set(l4[o], l4.subarray(o, o + l4[o + 1] * 8));
    expect(Array.from(opts.get(1)!.subarray(2))).toEqual(Array.from(GW_MAC));
    expect(get16(opts.get(5)!, 6)).toBe(1500);
    const pi = opts.get(3)!;
    expect([pi[2], pi[3] & 0xc0]).toEqual([64, 0xc0]); // /64, on-link + autonomous
    expect(formatIp6(pi.slice(16, 32))).toBe(formatIp6(parseIp6('fec0::')!));
    expect(formatIp6(opts.get(25)!.slice(8, 24))).toBe(formatIp6(parseIp6('fec0::3')!)); // RDNSS
    // from the unspecified address (no SLLA allowed then): to all nodes
    h.send(icmp6(133, [0, 0, 0, 0], { hop: 255, src: UNSPEC, dst: parseIp6('ff02::2') }));
    expect(formatIp6(checked(h.take()[0]).dst)).toBe(formatIp6(parseIp6('ff02::1')!));
    expect(h.net.stats().ndp_router_adverts).toBe(2);
  });

  it('a neighbour solicitation for a gateway address gets an advertisement with the gateway MAC', () => {
    const h = net();
    for (const target of [GW6, GW_LL, parseIp6('fec0::3')!]) {
      h.send(ns(target));
      const [r] = h.take();
      const c = checked(r);
      expect([c.l4[0], c.hop]).toEqual([136, 255]);
      expect(c.l4[4]).toBe(0x80 | 0x40 | 0x20); // router, solicited, override
      expect(formatIp6(c.l4.slice(8, 24))).toBe(formatIp6(target));
      expect(Array.from(c.l4.subarray(24, 32))).toEqual([2, 1, ...GW_MAC]);
      expect(formatIp6(c.dst)).toBe(formatIp6(GUEST6));
    }
    // unicast to the target works too; someone else's address (or the guest's own DAD) gets nothing
    h.send(ns(GW6, { dst: GW6 }));
    expect(h.take()).toHaveLength(1);
    h.send(ns(parseIp6('fec0::99')!));
    h.send(ns(GUEST6, { src: UNSPEC }, []));
    expect(h.take()).toHaveLength(0);
    // DAD for our address: the answer goes to all nodes, not solicited
    h.send(ns(GW6, { src: UNSPEC }, []));
    const dad = checked(h.take()[0]);
    expect(formatIp6(dad.dst)).toBe(formatIp6(parseIp6('ff02::1')!));
    expect(dad.l4[4] & 0x40).toBe(0);
    expect(h.net.stats().ndp_no_answer).toBe(2);
    noThrows(h);
  });

  it('drops hostile NDP: forwarded (hop limit < 255), bad code, short, bad options, wrong destination', () => {
    const h = net();
    h.send(ns(GW6, { hop: 254 }));
    // code 1, with a right checksum
    const nsBody = Uint8Array.of(135, 1, 0, 0, 0, 0, 0, 0, ...GW6, 1, 1, ...GUEST_MAC);
    h.send(ipv6(58, nsBody, 2, { hop: 255, dst: solicitedNode(GW6) }));
    h.send(icmp6(135, [0, 0, 0, 0, ...GW6.subarray(0, 8)], { hop: 255, dst: solicitedNode(GW6) })); // truncated target
    h.send(ns(GW6, {}, [1, 0, 0, 0, 0, 0, 0, 0])); // option length 0
    h.send(ns(GW6, {}, [1, 2, ...GUEST_MAC])); // option runs past the end
    h.send(ns(parseIp6('ff02::1')!, { dst: parseIp6('ff02::1:ff00:1') })); // multicast target
    h.send(ns(GW6, { dst: parseIp6('ff02::1:ff00:99') })); // not the target's group
    h.send(ns(GW6, { src: UNSPEC })); // DAD with a source link-layer address
    h.send(
      icmp6(133, [0, 0, 0, 0, 1, 1, ...GUEST_MAC], {
        hop: 255,
        src: UNSPEC,
        dst: parseIp6('ff02::2'),
      }),
    );
    h.send(icmp6(133, [0, 0], { hop: 255, dst: parseIp6('ff02::2') })); // RS shorter than 8
    expect(h.take()).toHaveLength(0);
    const s = h.net.stats();
    expect(s.drop_ndp_hop_limit).toBe(1);
    expect(s.drop_ndp_code).toBe(1);
    expect(s.drop_ndp_malformed).toBe(7);
    expect(s.drop_ndp_bad_destination).toBe(1);
    noThrows(h);
  });
});

describe('TCP over IPv6 to fec0::2 → the host ::1', () => {
  async function host6(onConn: (s: Socket) => void): Promise<{ srv: Server; port: number }> {
    const srv = createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      onConn(s);
    });
    await new Promise<void>((r) => srv.listen(0, '::1', r));
    cleanup.push(() => srv.close());
    return { srv, port: (srv.address() as AddressInfo).port };
  }

  function seg(o: {
    sport: number;
    dport: number;
    seq: number;
    ack?: number;
    flags: number;
    mss?: number;
    payload?: number[];
    dst?: Ip6;
    bad?: boolean;
  }) {
    const opts = o.mss ? [2, 4, o.mss >> 8, o.mss & 0xff] : [];
    const payload = o.payload ?? [];
    const t = new Uint8Array(20 + opts.length + payload.length);
    put16(t, 0, o.sport);
    put16(t, 2, o.dport);
    t.set([o.seq >>> 24, (o.seq >>> 16) & 0xff, (o.seq >>> 8) & 0xff, o.seq & 0xff], 4);
    const a = o.ack ?? 0;
    t.set([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff], 8);
    t[12] = ((20 + opts.length) / 4) << 4;
    t[13] = o.flags;
    put16(t, 14, 65535);
    t.set(opts, 20);
    t.set(payload, 20 + opts.length);
    return ipv6(6, t, 16, { dst: o.dst, badChecksum: o.bad });
  }

  const tcpFields = (p: NetPacket) => {
    const c = checked(p);
    const l4 = c.l4;
    const seq = ((l4[4] << 24) | (l4[5] << 16) | (l4[6] << 8) | l4[7]) >>> 0;
    return {
      ...c,
      sport: get16(l4, 0),
      dport: get16(l4, 2),
      seq,
      flags: l4[13],
      hl: (l4[12] >> 4) * 4,
    };
  };

  it('proxies a connection both ways with IPv6 headers, MSS 1440, TSO6 frames towards the guest', async () => {
    const big = Buffer.alloc(20_000, 0x5a);
    let hostGot = '';
    const { port } = await host6((s) => {
      s.on('data', (b) => {
        hostGot += b.toString();
        if (hostGot === 'hello') s.end(big);
      });
    });
    const h = net();
    h.send(seg({ sport: 40000, dport: port, seq: 1000, flags: F.SYN, mss: 1440 }));
    await until(() => h.got.length > 0);
    const synAck = tcpFields(h.take()[0]);
    expect(synAck.flags).toBe(F.SYN | F.ACK);
    expect([formatIp6(synAck.src), synAck.sport]).toEqual([formatIp6(GW6), port]);
    expect(Array.from(synAck.l4.subarray(20, 24))).toEqual([2, 4, 1440 >> 8, 1440 & 0xff]);
    const ack = (synAck.seq + 1) >>> 0;
    h.send(seg({ sport: 40000, dport: port, seq: 1001, ack, flags: F.ACK }));
    h.send(
      seg({
        sport: 40000,
        dport: port,
        seq: 1001,
        ack,
        flags: F.ACK | F.PSH,
        payload: [...Buffer.from('hello')],
      }),
    );
    h.net.tcp.flush();
    await until(() => hostGot === 'hello');
    // the host's reply: data frames, large ones as TSO6 with the MSS as gso size
    let bytes = 0;
    await until(() => {
      for (const p of h.take()) {
        const f = tcpFields(p);
        const n = f.l4.length - f.hl;
        if (n > 1440) expect(p.gso).toMatchObject({ type: GSO_TCPV6, size: 1440 });
        bytes += n;
        if (n > 0)
          h.send(
            seg({ sport: 40000, dport: port, seq: 1006, ack: (f.seq + n) >>> 0, flags: F.ACK }),
          );
      }
      return bytes >= big.length;
    });
    expect(bytes).toBe(big.length);
    expect(h.net.stats().tcp_established).toBe(1);
    noThrows(h);
  });

  it('hostfwd=tcp:[::1]:H-:G: a host connection becomes a SYN from fec0::2 to the guest SLAAC address', async () => {
    const { srv, port } = await host6(() => {});
    await new Promise((r) => srv.close(r));
    const h = net(`user,hostfwd=tcp:[::1]:${port}-:22`);
    await h.net.forwards.ready;
    expect(h.net.forwards.failed).toEqual([]);
    // Before the guest sent anything: no MAC, no address: the connection is refused.
    const early = connect(port, '::1');
    early.on('error', () => {});
    await until(() => early.destroyed || early.readyState === 'closed');
    expect(h.net.stats().drop_hostfwd6_no_guest_address).toBe(1);
    // Its router solicitation (from the link-local address) gives its MAC: the SYN goes to the
    // address SLAAC makes from it (EUI-64).
    h.send(icmp6(133, [0, 0, 0, 0], { src: GUEST_LL, dst: parseIp6('ff02::2')!, hop: 255 }));
    h.take();
    const client = connect(port, '::1');
    cleanup.push(() => client.destroy());
    let got = '';
    client.setEncoding('latin1');
    client.on('data', (d: string) => (got += d));
    await until(() => h.got.length > 0);
    const syn = tcpFields(h.take()[0]);
    expect(syn.flags).toBe(F.SYN);
    expect([formatIp6(syn.src), formatIp6(syn.dst), syn.dport]).toEqual([
      formatIp6(GW6),
      formatIp6(GUEST6),
      22,
    ]);
    expect(Array.from(syn.l4.subarray(20, 24))).toEqual([2, 4, 1440 >> 8, 1440 & 0xff]);
    // The guest accepts and sends; the host client reads it.
    const ack = (syn.seq + 1) >>> 0;
    const back = { sport: 22, dport: syn.sport, dst: GW6 };
    h.send(seg({ ...back, seq: 500, ack, flags: F.SYN | F.ACK, mss: 1440 }));
    expect(tcpFields(h.take()[0]).flags).toBe(F.ACK);
    h.send(seg({ ...back, seq: 501, ack, flags: F.ACK | F.PSH, payload: [...Buffer.from('ssh')] }));
    h.net.tcp.flush();
    await until(() => got === 'ssh');
    expect(h.net.stats()).toMatchObject({ hostfwd_connections: 1, tcp_established: 1 });
    noThrows(h);
  });

  it("takes the guest's TSO6 segments (payload_len 0, partial checksum) whole to the host", async () => {
    let got = 0;
    const { port } = await host6((s) => s.on('data', (b) => (got += b.length)));
    const h = net();
    h.send(seg({ sport: 40004, dport: port, seq: 1000, flags: F.SYN, mss: 1440 }));
    await until(() => h.got.length > 0);
    const ack = (tcpFields(h.take()[0]).seq + 1) >>> 0;
    h.send(seg({ sport: 40004, dport: port, seq: 1001, ack, flags: F.ACK }));
    const big = seg({
      sport: 40004,
      dport: port,
      seq: 1001,
      ack,
      flags: F.ACK,
      payload: new Array(30_000).fill(7),
    });
    put16(big, ETH + 4, 0); // as a NIC's TSO frame may carry it
    big[ETH + 40 + 16] ^= 0x55; // the checksum is the NIC's job (partial): not checked here
    h.send(big, {
      csum: { start: ETH + 40, offset: 16 },
      gso: { type: GSO_TCPV6, size: 1440, hdrLen: ETH + 40 + 20 },
    });
    h.net.tcp.flush();
    await until(() => got === 30_000);
    noThrows(h);
  });

  it('refuses other IPv6 destinations and restrict=on with a RST; drops bad checksums', async () => {
    const { port } = await host6(() => {});
    const h = net();
    h.send(seg({ sport: 40001, dport: port, seq: 5, flags: F.SYN, dst: parseIp6('2001:db8::1') }));
    const rst = tcpFields(h.take()[0]);
    expect(rst.flags & F.RST).toBe(F.RST);
    expect(formatIp6(rst.src)).toBe('2001:db8:0:0:0:0:0:1');
    h.send(seg({ sport: 40002, dport: port, seq: 5, flags: F.SYN, bad: true }));
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats()).toMatchObject({ tcp_refused: 1, drop_tcp_checksum: 1 });
    const r = net('user,restrict=on');
    r.send(seg({ sport: 40003, dport: port, seq: 5, flags: F.SYN }));
    expect(tcpFields(r.take()[0]).flags & F.RST).toBe(F.RST);
  });
});

describe('UDP over IPv6: fec0::2 → the host ::1, DNS at fec0::3', () => {
  const query = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1]; // "a" IN A

  async function udpServer(family: 'udp4' | 'udp6', host: string, reply: (m: Buffer) => Buffer) {
    const sock = createSocket(family);
    sock.on('message', (m, r) => sock.send(reply(m), r.port, r.address));
    await new Promise<void>((ok) => sock.bind(0, host, ok));
    cleanup.push(() => sock.close());
    return sock.address().port;
  }

  it('a datagram to fec0::2 reaches the host ::1 and the answer comes back from fec0::2', async () => {
    const port = await udpServer('udp6', '::1', (m) => Buffer.from(m.toString().toUpperCase()));
    const h = net();
    h.send(udp6(5555, port, [...Buffer.from('ping')]));
    await until(() => h.got.length > 0);
    const c = checked(h.take()[0]);
    expect([c.proto, formatIp6(c.src), formatIp6(c.dst)]).toEqual([
      17,
      formatIp6(GW6),
      formatIp6(GUEST6),
    ]);
    expect([get16(c.l4, 0), get16(c.l4, 2)]).toEqual([port, 5555]);
    expect(Buffer.from(c.l4.subarray(8)).toString()).toBe('PING');
  });

  it('forwards DNS at fec0::3 to the resolver (even an IPv4 one); SERVFAIL without, REFUSED restricted', async () => {
    const port = await udpServer('udp4', '127.0.0.1', (m) => {
      const r = Buffer.from(m);
      r[2] |= 0x80;
      return r;
    });
    const h = harness('user', { resolver: { host: '127.0.0.1', port } });
    cleanup.push(() => h.net.close());
    const dns6 = parseIp6('fec0::3')!;
    h.send(udp6(4444, 53, query, { dst: dns6 }));
    await until(() => h.got.length > 0);
    const c = checked(h.take()[0]);
    expect([formatIp6(c.src), get16(c.l4, 0), get16(c.l4, 2)]).toEqual([formatIp6(dns6), 53, 4444]);
    expect(c.l4[8 + 2] & 0x80).toBe(0x80);
    expect(h.net.stats().dns_forwarded).toBe(1);
    const none = net(); // no resolver
    none.send(udp6(4444, 53, query, { dst: dns6 }));
    const sf = checked(none.take()[0]);
    expect(sf.l4[8 + 3] & 0xf).toBe(2);
    const r = harness('user,restrict=on', { resolver: { host: '127.0.0.1', port } });
    cleanup.push(() => r.net.close());
    r.send(udp6(4444, 53, query, { dst: dns6 }));
    expect(checked(r.take()[0]).l4[8 + 3] & 0xf).toBe(5);
    r.send(udp6(4444, 9, [1], { dst: GW6 }));
    expect(r.net.stats().drop_restricted).toBe(1);
  });

  it('drops a zero checksum (not allowed over IPv6), bad lengths and other destinations', () => {
    const h = net();
    const zero = udp6(1, 2, [1, 2, 3]);
    zero[ETH + 40 + 6] = zero[ETH + 40 + 7] = 0;
    h.send(zero);
    const bad = udp6(1, 2, [1, 2, 3]);
    bad[ETH + 40 + 7] ^= 0xff;
    h.send(bad);
    const long = udp6(1, 2, [1, 2, 3]);
    put16(long, ETH + 40 + 4, 40); // UDP length beyond the packet
    h.send(long);
    h.send(ipv6(17, new Uint8Array(5), -1)); // shorter than a UDP header
    h.send(udp6(1, 2, [1], { dst: parseIp6('2001:db8::1') }));
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats()).toMatchObject({
      drop_udp_checksum: 2,
      drop_udp_length: 1,
      drop_udp_runt: 1,
      drop_udp6_no_route: 1,
    });
    noThrows(h);
  });
});

describe('hostile IPv6 frames in bulk', () => {
  it('random corruption of valid IPv6 frames is dropped and counted, never thrown', () => {
    const h = net();
    const bases = [
      icmp6(128, [0, 1, 0, 1, 9, 9]),
      icmp6(133, [0, 0, 0, 0, 1, 1, ...GUEST_MAC], { hop: 255, dst: parseIp6('ff02::2') }),
      icmp6(135, [0, 0, 0, 0, ...GW6, 1, 1, ...GUEST_MAC], { hop: 255, dst: GW6 }),
      ipv6(6, new Uint8Array(20).fill(0x11), 16),
    ];
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 4000; i++) {
      const b = bases[i % bases.length];
      const d = b.slice(0, ETH + rnd(b.length - ETH + 1));
      for (let k = rnd(4); k >= 0; k--) if (d.length > ETH) d[ETH + rnd(d.length - ETH)] = rnd(256);
      h.send(d);
      h.take();
    }
    noThrows(h);
  });
});
