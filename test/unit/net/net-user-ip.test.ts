/**
 * net=user's lower layers with hand-built frames: spec, ARP, IPv4 checks, ICMP echo (answered
 * at the gateway, relayed beyond it through a mock host socket), hostile input.
 */
import { describe, it, expect } from 'vitest';
import { get16, internetChecksum, put16 } from '../../../devices/net/offload.js';
import { parseUserSpec } from '../../../devices/net/user/config.js';
import { NetSpecError } from '../../../devices/net/backend.js';
import {
  BCAST,
  GUEST_MAC,
  GW_MAC,
  eth,
  harness,
  ip,
  ipv4,
  mockEcho,
  pingId,
  tcp,
  F,
  udp,
  wire,
} from './user-frames.js';

function arpRequest(target: string, sender = '10.0.2.15'): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, 1]);
  a.set(GUEST_MAC, 8);
  a.set(sender.split('.').map(Number), 14);
  a.set(target.split('.').map(Number), 24);
  return eth(0x0806, a, BCAST);
}

function echo(dst: string, size = 56, badChecksum = false): Uint8Array {
  const m = new Uint8Array(8 + size);
  m[0] = 8;
  m.set([0x12, 0x34, 0, 1], 4);
  for (let i = 8; i < m.length; i++) m[i] = i;
  let s = 0;
  for (let i = 0; i < m.length; i += 2) s += (m[i] << 8) | (m[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  const c = (~s & 0xffff) ^ (badChecksum ? 1 : 0);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return eth(0x0800, ipv4(1, m, { dst: ip(dst) }));
}

describe('net=user spec', () => {
  it('parses restrict and repeated hostfwd, and names what is wrong', () => {
    expect(
      parseUserSpec(
        'user,restrict=on,hostfwd=tcp::8080-:80,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22',
      ),
    ).toEqual({
      restrict: true,
      hostfwd: [
        {
          proto: 'tcp',
          hostAddr: '127.0.0.1',
          hostPort: 8080,
          guestAddr: ip('10.0.2.15'),
          guestPort: 80,
        },
        {
          proto: 'tcp',
          hostAddr: '127.0.0.1',
          hostPort: 2222,
          guestAddr: ip('10.0.2.15'),
          guestPort: 22,
        },
      ],
    });
    // The same host port once per protocol.
    expect(
      parseUserSpec('user,hostfwd=udp::5353-:53,hostfwd=tcp::5353-:53').hostfwd.map((f) => f.proto),
    ).toEqual(['udp', 'tcp']);
    // IPv6: to the guest's autoconfigured address, or the one given.
    expect(
      parseUserSpec(
        'user,hostfwd=tcp:[::1]:2222-:22,hostfwd=tcp:[::]:2223-[fec0::15]:22',
      ).hostfwd.map((f) => [
        f.hostAddr,
        f.hostPort,
        f.guestAddr6 === 'auto' ? 'auto' : f.guestAddr6?.[15],
        f.guestPort,
      ]),
    ).toEqual([
      ['::1', 2222, 'auto', 22],
      ['::', 2223, 0x15, 22],
    ]);
    const bad: [string, RegExp][] = [
      ['user,hostfwd=tcp::8080-:80,hostfwd=tcp::8080-:81', /forwarded twice/],
      ['user,hostfwd=tcp::70000-:80', /not 1\.\.65535/],
      ['user,hostfwd=sctp::53-:53', /expected tcp:/],
      ['user,hostfwd=tcp:example:1-:2', /not an IPv4 address/],
      ['user,hostfwd=tcp::1-192.168.0.1:2', /not in 10\.0\.2\.0\/24/],
      ['user,hostfwd=udp:[::1]:1-:2', /IPv6 forwards are TCP only/],
      ['user,hostfwd=tcp:[::g]:1-:2', /is not IPv6/],
      ['user,hostfwd=tcp:[::1]:1-[fe80::1]:2', /not in fec0::\/64/],
      ['user,restrict=1', /restrict=on or restrict=off/],
      ['user,smb=/srv', /unknown option "smb=\/srv"/],
    ];
    for (const [spec, re] of bad) {
      expect(() => parseUserSpec(spec)).toThrow(NetSpecError);
      expect(() => parseUserSpec(spec)).toThrow(re);
    }
  });
});

describe('net=user ARP and ICMP', () => {
  it('answers ARP for the gateway and DNS with the gateway MAC, and nothing else', () => {
    const h = harness();
    h.send(arpRequest('10.0.2.2'));
    h.send(arpRequest('10.0.2.3'));
    h.send(arpRequest('10.0.2.77'));
    const r = h.take();
    expect(r).toHaveLength(2);
    const d = r[0].data;
    expect([...d.subarray(0, 6)]).toEqual([...GUEST_MAC]);
    expect(get16(d, 20)).toBe(2); // reply
    expect([...d.subarray(22, 28)]).toEqual([...GW_MAC]);
    expect([...d.subarray(28, 32)]).toEqual([10, 0, 2, 2]);
    expect([...d.subarray(38, 42)]).toEqual([10, 0, 2, 15]);
    expect([...r[1].data.subarray(28, 32)]).toEqual([10, 0, 2, 3]);
    expect(h.net.stats().arp_replies).toBe(2);
  });

  it('answers ping to 10.0.2.2 with the same data, checksums right; not elsewhere', () => {
    const h = harness();
    h.send(echo('10.0.2.2', 1000));
    const [r] = h.take();
    const d = wire(r);
    expect(d[34]).toBe(0); // echo reply
    expect([...d.subarray(26, 34)]).toEqual([10, 0, 2, 2, 10, 0, 2, 15]);
    expect(d.length).toBe(14 + 20 + 8 + 1000);
    expect(d[34 + 8 + 500]).toBe((8 + 500) & 0xff);
    h.send(echo('8.8.8.8'));
    h.send(echo('10.0.2.2', 56, true));
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats()).toMatchObject({ drop_icmp_not_relayed: 1, drop_icmp_checksum: 1 });
  });

  it('restrict=on still answers ARP and the gateway ping', () => {
    const h = harness('user,restrict=on');
    h.send(arpRequest('10.0.2.2'));
    h.send(echo('10.0.2.2'));
    expect(h.take()).toHaveLength(2);
  });
});

describe('net=user ping beyond the gateway (icmp-relay.ts)', () => {
  const DST = ip('192.0.2.9');
  /** The guest's echo request as sent: the IP header and the ICMP message. */
  const icmpData = (f: Uint8Array) => f.subarray(42);

  it('relays an echo request and maps the reply back: id, seq, data, TTL, checksums', () => {
    const m = mockEcho();
    const h = harness('user', { echoSocket: m.opener });
    const req = pingId(DST, 0xbeef, 7, 300, 61);
    h.send(req);
    expect(m.sent).toHaveLength(1);
    expect(m.sent[0]).toMatchObject({ v6: false, addr: '192.0.2.9', ttl: 61 });
    expect([...m.sent[0].payload]).toEqual([...icmpData(req)]);
    expect(h.net.stats()).toMatchObject({ icmp_echo_relayed: 1, icmp_echoes: 1, icmp_sockets: 1 });
    m.reply(0, { ttl: 50 });
    const [r] = h.take();
    const d = wire(r); // IP and ICMP checksums verified
    expect([...d.subarray(0, 6)]).toEqual([...GUEST_MAC]);
    expect([...d.subarray(26, 34)]).toEqual([192, 0, 2, 9, 10, 0, 2, 15]);
    expect(d[22]).toBe(49); // one hop fewer than the host saw
    expect(d[34]).toBe(0); // echo reply
    expect(get16(d, 38)).toBe(0xbeef);
    expect(get16(d, 40)).toBe(7);
    expect([...icmpData(d)]).toEqual([...icmpData(req)]);
    expect(h.net.stats()).toMatchObject({ icmp_echo_relayed_replies: 1, icmp_echoes: 0 });
    // The same reply again (a duplicate) matches nothing.
    m.reply(0);
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats().drop_icmp_unmatched).toBe(1);
    h.net.close();
    expect(m.closed).toBe(1);
  });

  it('two guest pings with the same sequence number get their own replies, in any order', () => {
    const m = mockEcho();
    const h = harness('user', { echoSocket: m.opener });
    h.send(pingId(DST, 0x1111, 1));
    h.send(pingId(DST, 0x2222, 1));
    expect(m.sent).toHaveLength(2);
    expect(m.sent[0].seq).not.toBe(m.sent[1].seq); // the host socket has one identifier
    m.reply(1);
    m.reply(0);
    const ids = h.take().map((p) => get16(wire(p), 38));
    expect(ids).toEqual([0x2222, 0x1111]);
    // A reply from another address than the one pinged is not taken for it.
    h.send(pingId(DST, 0x3333, 2));
    m.reply(2, { from: '192.0.2.10' });
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats()).toMatchObject({ drop_icmp_unmatched: 1, icmp_echoes: 1 });
    expect(h.net.stats().drop_internal_error).toBeUndefined();
  });

  it('relays an ICMP error about a request from the router that sent it, quoting the guest packet', () => {
    const m = mockEcho();
    const h = harness('user', { echoSocket: m.opener });
    const req = pingId(DST, 0x4444, 9, 56, 1);
    h.send(req);
    m.deliver(false, { from: '198.51.100.1', type: 11, code: 0, seq: m.sent[0].seq });
    const [r] = h.take();
    const d = wire(r);
    expect([...d.subarray(26, 34)]).toEqual([198, 51, 100, 1, 10, 0, 2, 15]);
    expect([d[34], d[35]]).toEqual([11, 0]); // time exceeded in transit
    // RFC 792: the guest's IP header and the first 8 bytes of its datagram.
    expect([...d.subarray(42)]).toEqual([...req.subarray(14, 42)]);
    expect(h.net.stats()).toMatchObject({ icmp_errors_relayed: 1, icmp_echoes: 0 });
    // "Fragmentation needed" is about the host's path, not the guest's: not relayed.
    h.send(pingId(DST, 0x4444, 10));
    m.deliver(false, { from: '198.51.100.1', type: 3, code: 4, seq: m.sent[1].seq, info: 1400 });
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats().drop_icmp_frag_needed).toBe(1);
  });

  it('restrict=on relays nothing (no host socket opened) but still answers the gateway', () => {
    const m = mockEcho();
    const h = harness('user,restrict=on', { echoSocket: m.opener });
    h.send(pingId(DST, 1, 1));
    expect(m.opened).toBe(0);
    expect(m.sent).toHaveLength(0);
    expect(h.net.stats().drop_restricted).toBe(1);
    h.send(echo('10.0.2.2'));
    h.send(echo('10.0.2.3'));
    expect(h.take()).toHaveLength(2);
    expect(h.net.stats().icmp_echo_replies).toBe(2);
  });

  it('answers 10.0.2.2 and 10.0.2.3 itself; drops what has no route or is not an echo request', () => {
    const m = mockEcho();
    const h = harness('user', { echoSocket: m.opener });
    h.send(echo('10.0.2.2'));
    h.send(echo('10.0.2.3'));
    expect(h.take()).toHaveLength(2);
    for (const to of ['10.0.2.77', '127.0.0.1', '0.1.2.3', '224.0.0.1', '255.255.255.255'])
      h.send(pingId(ip(to), 1, 1));
    const ts = new Uint8Array(20);
    ts[0] = 13; // timestamp request
    put16(ts, 2, internetChecksum(ts, 0, 20));
    h.send(eth(0x0800, ipv4(1, ts, { dst: DST })));
    h.send(eth(0x0800, ipv4(1, Uint8Array.of(8, 0, 0, 0), { dst: DST }))); // runt
    h.send(echo('192.0.2.9', 56, true)); // bad checksum
    expect(m.sent).toHaveLength(0);
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats()).toMatchObject({
      drop_icmp_no_route: 5,
      drop_icmp_unhandled: 1,
      drop_icmp_runt: 1,
      drop_icmp_checksum: 1,
      icmp_echo_replies: 2,
    });
  });

  it('bounds what a flood holds: requests in flight, their age, and payload size', async () => {
    const m = mockEcho();
    const limits = { icmpEchoes: 8, icmpTimeoutMs: 60_000, icmpPayload: 1000 };
    const h = harness('user', { echoSocket: m.opener, limits });
    for (let i = 0; i < 2000; i++) {
      h.send(pingId((ip('198.18.0.0') + i) >>> 0, i & 0xffff, i & 0xffff));
      expect(h.net.stats().icmp_echoes).toBeLessThanOrEqual(8);
    }
    expect(m.sent).toHaveLength(2000);
    expect(h.net.stats()).toMatchObject({ drop_icmp_echo_evicted: 1992, icmp_echoes: 8 });
    // Replies to evicted requests are dropped; the newest ones still get through.
    m.reply(0);
    m.reply(1999);
    const got = h.take();
    expect(got).toHaveLength(1);
    expect(get16(wire(got[0]), 40)).toBe(1999);
    // Payload: up to the bound relayed, beyond dropped (both ways).
    h.send(pingId(DST, 5, 5, 1000));
    h.send(pingId(DST, 5, 6, 1001));
    expect(m.sent).toHaveLength(2001);
    expect(h.net.stats().drop_icmp_too_big).toBe(1);
    m.reply(2000, { payload: new Uint8Array(1001) });
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats().drop_icmp_too_big).toBe(2);
    h.net.close();

    // A request not answered in icmpTimeoutMs is forgotten; its late reply is dropped.
    const m2 = mockEcho();
    const h2 = harness('user', { echoSocket: m2.opener, limits: { icmpTimeoutMs: 30 } });
    h2.send(pingId(DST, 1, 1));
    expect(h2.net.stats().icmp_echoes).toBe(1);
    await new Promise((r) => setTimeout(r, 60));
    expect(h2.net.stats()).toMatchObject({ icmp_echoes: 0, icmp_echo_timeouts: 1 });
    m2.reply(0);
    expect(h2.take()).toHaveLength(0);
    expect(h2.net.stats().drop_icmp_unmatched).toBe(1);
    h2.net.close();
  });

  it('without a host socket: counts every echo dropped and says why once', () => {
    const why = 'ICMP datagram socket: Permission denied; raw ICMP socket: Operation not permitted';
    const m = mockEcho({ fail: why });
    const log: string[] = [];
    const h = harness('user', { echoSocket: m.opener, log: (s) => log.push(s) });
    for (let i = 0; i < 3; i++) h.send(pingId(DST, 1, i));
    expect(h.take()).toHaveLength(0);
    expect(m.opened).toBe(1); // not retried for every packet
    expect(h.net.stats().drop_icmp_not_relayed).toBe(3);
    expect(log).toHaveLength(1);
    expect(log[0]).toContain('ping beyond the gateway is not relayed');
    expect(log[0]).toContain(why);
    expect(h.net.icmp.unavailable).toBe(why);
    // The gateway still answers.
    h.send(echo('10.0.2.2'));
    expect(h.take()).toHaveLength(1);
  });

  it('a failing send and nonsense from the host socket are counted, never thrown', () => {
    const m = mockEcho({ sendError: 'ENETUNREACH' });
    const h = harness('user', { echoSocket: m.opener });
    h.send(pingId(DST, 1, 1));
    expect(h.net.stats()).toMatchObject({ drop_icmp_send_enetunreach: 1, icmp_echoes: 0 });
    const m2 = mockEcho();
    const h2 = harness('user', { echoSocket: m2.opener });
    h2.send(pingId(DST, 1, 1));
    m2.deliver(false, { from: 'not an address', seq: m2.sent[0].seq, payload: new Uint8Array(8) });
    m2.deliver(false, { from: '192.0.2.9', seq: 999, payload: new Uint8Array(8) });
    m2.deliver(false, { from: '192.0.2.9', seq: 999, type: 3, code: 1 });
    expect(h2.take()).toHaveLength(0);
    expect(h2.net.stats()).toMatchObject({ drop_icmp_unmatched: 3, icmp_echoes: 1 });
    expect(h2.net.stats().drop_internal_error).toBeUndefined();
    // Mutated echo requests (and the replies they get) never throw; what goes out is bounded.
    const m3 = mockEcho();
    const h3 = harness('user', { echoSocket: m3.opener, limits: { icmpEchoes: 16 } });
    const seed = pingId(DST, 0x5555, 1, 64);
    for (let i = 0; i < 3000; i++) {
      const f = seed.slice();
      for (let k = 0; k < 3; k++)
        f[14 + ((i * 7919 + k * 104729) % (f.length - 14))] ^= 1 << ((i + k) % 8);
      h3.send(f);
      if (m3.sent.length) m3.reply(m3.sent.length - 1);
      expect(h3.net.stats().icmp_echoes).toBeLessThanOrEqual(16);
    }
    expect(h3.net.stats().drop_internal_error).toBeUndefined();
  });
});

describe('net=user hostile frames', () => {
  it('drops runts, giants, bad IP headers, checksums and bad fragments, and counts each', () => {
    const h = harness();
    const good = echo('10.0.2.2');
    const ipBody = good.subarray(14);
    const cases: [Uint8Array, string][] = [
      [new Uint8Array(6), 'drop_runt'],
      [new Uint8Array(70_000), 'drop_giant'],
      [eth(0x88cc, new Uint8Array(40)), 'drop_ethertype'],
      [eth(0x86dd, new Uint8Array(40)), 'drop_ip6_version'],
      [eth(0x0800, new Uint8Array(10)), 'drop_ip_runt'],
      [eth(0x0800, ipv4(1, ipBody.subarray(20), { ihl: 4 })), 'drop_ip_header_length'],
      [eth(0x0800, ipv4(1, new Uint8Array(8), { ihl: 15 })), 'drop_ip_header_length'],
      [eth(0x0800, ipv4(1, ipBody.subarray(20), { totLen: 5000 })), 'drop_ip_total_length'],
      [eth(0x0800, ipv4(1, ipBody.subarray(20), { totLen: 10 })), 'drop_ip_total_length'],
      [eth(0x0800, ipv4(1, ipBody.subarray(20), { badChecksum: true })), 'drop_ip_checksum'],
      // 64 bytes at offset 65480 (8185 × 8): beyond 65535 once the 20-byte header is added.
      [eth(0x0800, ipv4(1, ipBody.subarray(20), { flagsFrag: 8185 })), 'drop_frag_too_big'],
      // a middle fragment whose length is not a multiple of 8 (64 + 8 header bytes: 72 is; 66 not)
      [eth(0x0800, ipv4(1, new Uint8Array(66), { flagsFrag: 0x2000 })), 'drop_frag_length'],
      [eth(0x0800, ipv4(99, new Uint8Array(8))), 'drop_ip_protocol'],
      [eth(0x0800, ipv4(17, new Uint8Array(4))), 'drop_udp_runt'],
      [eth(0x0800, ipv4(6, new Uint8Array(12))), 'drop_tcp_runt'],
      [tcp({ sport: 1, dport: 2, seq: 0, flags: F.SYN, doff: 16 }), 'drop_tcp_header_length'],
      [tcp({ sport: 1, dport: 2, seq: 0, flags: F.SYN, doff: 60 }), 'drop_tcp_header_length'],
      [tcp({ sport: 1, dport: 2, seq: 0, flags: F.SYN, badChecksum: true }), 'drop_tcp_checksum'],
      [eth(0x0800, new Uint8Array(40), Uint8Array.of(2, 0, 0, 0, 0, 1)), 'drop_not_for_us'],
    ];
    for (const [f, counter] of cases) {
      const before = h.net.stats()[counter] ?? 0;
      h.send(f);
      expect(h.net.stats()[counter], counter).toBe(before + 1);
    }
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats().drop_internal_error).toBeUndefined();
    h.net.close();
  });

  it('survives a fragment flood and random mutations of valid frames without throwing', () => {
    const fragBytes = 64 * 1024;
    const h = harness('user', { limits: { udpFlows: 4, tcpConnections: 4, fragBytes } });
    // One datagram (same addresses, protocol, identification), 5,000 pieces that overlap
    // their predecessors: each overlap drops what was held, nothing is ever dispatched.
    for (let i = 0; i < 5000; i++) {
      h.send(eth(0x0800, ipv4(17, new Uint8Array(1400), { flagsFrag: 0x2000 | (i & 0x1fff) })));
      expect(h.net.stats().frag_bytes).toBeLessThanOrEqual(fragBytes);
    }
    const st = h.net.stats();
    expect(st.drop_frag_overlap).toBeGreaterThan(2000);
    expect(st.frag_datagrams).toBeLessThanOrEqual(1);
    expect(h.take()).toHaveLength(0);
    const seeds = [
      echo('10.0.2.2'),
      arpRequest('10.0.2.2'),
      udp(68, 67, new Uint8Array(300), 0, 0xffffffff),
      udp(1000, 53, new Uint8Array(30), ip('10.0.2.15'), ip('10.0.2.3')),
      tcp({ sport: 1000, dport: 9, seq: 1, flags: F.ACK | F.PSH, payload: new Uint8Array(100) }),
    ];
    let x = 12345;
    const rnd = (n: number) => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let i = 0; i < 10_000; i++) {
      const f = seeds[i % seeds.length].slice(0, 14 + rnd(400));
      for (let k = rnd(6); k > 0; k--) f[14 + rnd(Math.max(1, f.length - 14))] = rnd(256);
      expect(() => h.send(f, i % 3 === 0 ? { csumValid: true } : {})).not.toThrow();
    }
    expect(h.net.stats().drop_internal_error).toBeUndefined();
    h.net.close();
  });
});
