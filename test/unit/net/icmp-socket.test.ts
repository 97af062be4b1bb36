/**
 * The native addon's ICMP echo sockets (native/wasmvisor-native.c, icmpEchoOpen) against the
 * host's own stack: each kind (unprivileged datagram socket, raw socket) pings 127.0.0.1 and ::1
 * and gets its replies with the sequence numbers and data sent; and net=user relays a guest's
 * ping to the host's own non-loopback address through the socket the NAT picks. A kind the host
 * refuses (ping_group_range, no CAP_NET_RAW) or an addon that is not built is skipped, saying so.
 */
import { describe, it, expect } from 'vitest';
import { networkInterfaces } from 'node:os';
import { loadHostNative, type IcmpEchoSocket } from '../../../devices/host-native.js';
import { hostEchoSocket } from '../../../devices/net/user/icmp-relay.js';
import { get16 } from '../../../devices/net/offload.js';
import { harness, ip, pingId, until, wire } from './user-frames.js';

interface Got {
  from: string;
  type: number;
  seq: number;
  payload: Buffer | null;
  ttl: number;
}

const native = loadHostNative().native;

/** Opens a socket of that kind, or says why it cannot be (the test is then skipped). */
function open(v6: boolean, mode: 'dgram' | 'raw', got: Got[]): IcmpEchoSocket | string {
  if (!native) return `native addon not loaded: ${loadHostNative().reason}`;
  if (!native.icmpEchoOpen) return 'the addon predates icmpEchoOpen';
  try {
    return native.icmpEchoOpen(
      v6,
      (from, type, _code, seq, payload, ttl) => got.push({ from, type, seq, payload, ttl }),
      mode,
    );
  } catch (e) {
    const err = e as Error & { code?: string; rawCode?: string };
    return `${mode} ICMP${v6 ? 'v6' : ''} socket refused here (${err.code}/${err.rawCode ?? '-'}): ${err.message}`;
  }
}

describe.each([
  [false, '127.0.0.1', 0],
  [true, '::1', 129],
] as const)('native ICMP echo socket (IPv6: %s, to %s)', (v6, loopback, replyType) => {
  it.for(['dgram', 'raw'] as const)(
    '%s: gets each reply once, with its data',
    async (mode, ctx) => {
      const got: Got[] = [];
      const s = open(v6, mode, got);
      if (typeof s === 'string') {
        console.log(`skipped: ${s}`);
        return ctx.skip(s);
      }
      try {
        expect(s.kind).toBe(mode);
        s.send(loopback, 41, Buffer.from('first echo'));
        s.send(loopback, 42, new Uint8Array(1000).fill(0x5a), 7);
        await until(() => got.length >= 2, 3000);
        await new Promise((r) => setTimeout(r, 50)); // nothing more (no duplicates, no requests)
        expect(got.map((g) => [g.from, g.type, g.seq])).toEqual([
          [loopback, replyType, 41],
          [loopback, replyType, 42],
        ]);
        expect(got[0].payload?.toString()).toBe('first echo');
        expect(got[1].payload).toEqual(Buffer.alloc(1000, 0x5a));
        expect(got[0].ttl).toBeGreaterThan(0);
      } finally {
        s.close();
      }
      // Closed: sending is an error with an errno code; closing again is harmless.
      expect(() => s.send(loopback, 1, new Uint8Array(4))).toThrow(
        expect.objectContaining({ code: 'EBADF' }),
      );
      s.close();
    },
  );
});

describe('native ICMP echo socket, argument checks', () => {
  it('refuses bad arguments with a TypeError, not a crash', (ctx) => {
    const s = open(false, 'raw', []);
    const t = typeof s === 'string' ? open(false, 'dgram', []) : s;
    if (typeof t === 'string') return ctx.skip(t);
    try {
      expect(() => t.send('not an address', 1, new Uint8Array(1))).toThrow(TypeError);
      expect(() => t.send('::1', 1, new Uint8Array(1))).toThrow(TypeError);
      expect(() => t.send('127.0.0.1', 70000, new Uint8Array(1))).toThrow(TypeError);
      expect(() => t.send('127.0.0.1', 1, 'text' as unknown as Uint8Array)).toThrow(TypeError);
    } finally {
      t.close();
    }
  });
});

/** The host's own first non-loopback IPv4 address, if it has one. */
function hostAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

describe('net=user with the host ICMP socket', () => {
  it("relays a guest's ping to the host's own address and back", async (ctx) => {
    const addr = hostAddress();
    if (!addr) return ctx.skip('the host has no non-loopback IPv4 address');
    const log: string[] = [];
    const h = harness('user', { echoSocket: hostEchoSocket, log: (m) => log.push(m) });
    try {
      h.send(pingId(ip(addr), 0x7777, 3, 100));
      if (h.net.icmp.unavailable) {
        // What a user sees in the log when the host allows neither socket kind.
        expect(log).toEqual([expect.stringContaining(h.net.icmp.unavailable)]);
        return ctx.skip(`no host ICMP socket: ${h.net.icmp.unavailable}`);
      }
      await until(() => h.got.length > 0, 3000);
      const d = wire(h.take()[0]);
      expect([...d.subarray(26, 30)]).toEqual(addr.split('.').map(Number));
      expect([d[34], get16(d, 38), get16(d, 40)]).toEqual([0, 0x7777, 3]);
      expect(h.net.stats()).toMatchObject({ icmp_echo_relayed_replies: 1, icmp_echoes: 0 });
      expect(log).toEqual([]);
    } finally {
      h.net.close();
    }
  });
});
