/** net=user's lower layers with hand-built frames: spec, ARP, IPv4 checks, ICMP echo, hostile input. */
import { describe, it, expect } from 'vitest';
import { get16 } from '../../../devices/net/offload.js';
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
      ['user,tftp=/srv', /unknown option "tftp=\/srv"/],
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
