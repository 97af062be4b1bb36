/** net=user's UDP services with hand-built frames: DHCP, DNS forwarding, UDP NAT and its limits. */
import { describe, it, expect, afterEach } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { get16 } from '../../../devices/net/offload.js';
import { dnsErrorReply, resolverFrom } from '../../../devices/net/user/dns.js';
import {
  DNS,
  GATEWAY,
  GUEST,
  GUEST_MAC,
  dhcp,
  dhcpOptions as options,
  get32,
  harness,
  ip,
  udp,
  until,
  wire,
} from './user-frames.js';

const open: { close(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

function dnsQuery(id: number): Uint8Array {
  const name = [7, ...Buffer.from('example'), 3, ...Buffer.from('com'), 0];
  return Uint8Array.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...name, 0, 1, 0, 1]);
}

async function udpServer(reply: (msg: Buffer) => Buffer): Promise<{ sock: Socket; port: number }> {
  const sock = createSocket('udp4');
  sock.on('message', (m, r) => sock.send(reply(m), r.port, r.address));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  open.push(sock);
  return { sock, port: (sock.address() as AddressInfo).port };
}

describe('net=user DHCP', () => {
  it('offers and acknowledges 10.0.2.15 with router, DNS, netmask and lease', () => {
    const h = harness();
    h.send(dhcp(1));
    h.send(dhcp(3, [50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2]));
    const [offer, ack] = h.take().map(wire);
    for (const [d, type] of [
      [offer, 2],
      [ack, 5],
    ] as const) {
      expect([...d.subarray(0, 6)]).toEqual([...GUEST_MAC]);
      expect(get32(d, 26)).toBe(GATEWAY);
      expect(get32(d, 30)).toBe(0xffffffff);
      expect(get16(d, 36)).toBe(68);
      expect(get32(d, 42 + 4)).toBe(0x11223344); // xid
      expect(get32(d, 42 + 16)).toBe(GUEST); // yiaddr
      const o = options(d);
      expect(o.get(53)).toEqual([type]);
      expect(o.get(1)).toEqual([255, 255, 255, 0]);
      expect(o.get(3)).toEqual([10, 0, 2, 2]);
      expect(o.get(6)).toEqual([10, 0, 2, 3]);
      expect(o.get(51)).toEqual([0, 1, 0x51, 0x80]); // 86400 s
    }
  });

  it('NAKs another address, ignores other servers and malformed messages', () => {
    const h = harness();
    h.send(dhcp(3, [50, 4, 10, 0, 2, 99]));
    expect(options(wire(h.take()[0])).get(53)).toEqual([6]);
    h.send(dhcp(3, [54, 4, 192, 168, 1, 1]));
    h.send(dhcp(1, [12, 200, 1, 2])); // option longer than the message
    h.send(udp(68, 67, new Uint8Array(100), 0, 0xffffffff));
    expect(h.take()).toHaveLength(0);
    expect(h.net.stats()).toMatchObject({
      dhcp_nak: 1,
      drop_dhcp_other_server: 1,
      drop_dhcp_malformed: 2,
    });
  });
});

describe('net=user DNS', () => {
  it('forwards a query to the resolver and answers from 10.0.2.3:53', async () => {
    const stub = await udpServer((q) => {
      const r = Buffer.from(q);
      r[2] |= 0x80;
      return r;
    });
    const h = harness('user', { resolver: { host: '127.0.0.1', port: stub.port } });
    open.push(h.net);
    h.send(udp(40000, 53, dnsQuery(0xabcd), GUEST, DNS));
    await until(() => h.got.length > 0);
    const d = wire(h.take()[0]);
    expect(get32(d, 26)).toBe(DNS);
    expect(get16(d, 34)).toBe(53);
    expect(get16(d, 36)).toBe(40000);
    expect(get16(d, 42)).toBe(0xabcd);
    expect(d[44] & 0x80).toBe(0x80);
  });

  it('answers SERVFAIL without a resolver and REFUSED with restrict=on, at once', () => {
    for (const [spec, rcode] of [
      ['user', 2],
      ['user,restrict=on', 5],
    ] as const) {
      const h = harness(spec);
      h.send(udp(40000, 53, dnsQuery(7), GUEST, DNS));
      const d = wire(h.take()[0]);
      expect(get16(d, 42)).toBe(7);
      expect(d[45] & 0xf).toBe(rcode);
      expect(get16(d, 46)).toBe(1); // the question is echoed
      expect(d.length).toBe(42 + dnsQuery(7).length);
    }
  });

  it('reads the resolver from resolv.conf text and refuses to answer a non-query', () => {
    expect(resolverFrom('# x\nnameserver ::1\nnameserver 10.1.2.3\n')).toEqual({
      host: '10.1.2.3',
      port: 53,
    });
    expect(resolverFrom('search lan\n')).toBeUndefined();
    expect(dnsErrorReply(new Uint8Array(5), 2)).toBeUndefined();
    const q = dnsQuery(1);
    q[2] |= 0x80;
    expect(dnsErrorReply(q, 2)).toBeUndefined();
  });
});

describe('net=user UDP NAT', () => {
  it('maps 10.0.2.2 to the host loopback both ways, bounds flows, closes idle ones', async () => {
    const echo = await udpServer((m) => Buffer.concat([Buffer.from('re:'), m]));
    const h = harness('user', { limits: { udpFlows: 2, udpIdleMs: 500 } });
    open.push(h.net);
    h.send(udp(5000, echo.port, Buffer.from('hi')));
    await until(() => h.got.length === 1);
    const d = wire(h.take()[0]);
    expect(get32(d, 26)).toBe(GATEWAY);
    expect(get16(d, 34)).toBe(echo.port);
    expect(get16(d, 36)).toBe(5000);
    expect(Buffer.from(d.subarray(42)).toString()).toBe('re:hi');
    h.send(udp(5001, echo.port, Buffer.from('a')));
    h.send(udp(5002, echo.port, Buffer.from('b'))); // a third flow: over the limit
    expect(h.net.stats()).toMatchObject({ udp_flows: 2, drop_udp_flow_limit: 1 });
    await until(() => h.net.stats().udp_flows === 0);
    h.send(udp(5002, echo.port, Buffer.from('c')));
    await until(() => h.got.some((p) => Buffer.from(wire(p).subarray(42)).toString() === 're:c'));
  });

  it('restrict=on keeps UDP from the host and the outside', () => {
    const h = harness('user,restrict=on');
    h.send(udp(5000, 9999, Buffer.from('x')));
    h.send(udp(5000, 9999, Buffer.from('x'), GUEST, ip('192.0.2.1')));
    expect(h.net.stats()).toMatchObject({ drop_restricted: 2, udp_flows: 0 });
  });
});

describe('net=user UDP port forwards', () => {
  it("relays a host client to the guest and the guest's answer back, with restrict=on", async () => {
    const probe = await udpServer((m) => m);
    const port = probe.port;
    probe.sock.close();
    open.splice(open.indexOf(probe.sock), 1);
    const h = harness(`user,restrict=on,hostfwd=udp::${port}-:5353`);
    open.push(h.net);
    await h.net.forwards.ready;
    expect(h.net.forwards.failed).toEqual([]);
    h.send(udp(9, 9, Buffer.from('x'))); // any frame: the guest's MAC is learnt
    const client = createSocket('udp4');
    open.push(client);
    const answers: string[] = [];
    client.on('message', (m) => answers.push(m.toString()));
    client.send('question', port, '127.0.0.1');
    await until(() => h.got.length > 0);
    const d = wire(h.take()[0]);
    expect([get32(d, 26), get32(d, 30), get16(d, 36)]).toEqual([GATEWAY, GUEST, 5353]);
    expect(Buffer.from(d.subarray(42)).toString()).toBe('question');
    const gwPort = get16(d, 34);
    h.send(udp(5353, gwPort, Buffer.from('answer'), GUEST, GATEWAY));
    await until(() => answers.length > 0);
    expect(answers).toEqual(['answer']);
    expect(h.net.stats()).toMatchObject({ hostfwd_udp_in: 1, hostfwd_udp_out: 1, udp_flows: 1 });
    // Another source port of the guest is not the forward's: ordinary (restricted) UDP.
    h.send(udp(5354, gwPort, Buffer.from('stray'), GUEST, GATEWAY));
    expect(h.net.stats().drop_restricted).toBe(2);
  });
});
