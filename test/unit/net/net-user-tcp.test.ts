/**
 * net=user's TCP proxy with hand-built guest segments against real host sockets on 127.0.0.1:
 * handshake, data both ways within windows and MSS, offloaded large segments, FIN/RST, refusal,
 * retransmission, window/backpressure bounds, SYN floods, out-of-window segments, port forwards.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { GSO_TCPV4 } from '../../../devices/net/packet.js';
import { get16, toWireFrames } from '../../../devices/net/offload.js';
import {
  BCAST,
  F,
  GATEWAY,
  GUEST,
  GUEST_MAC,
  GW_MAC,
  harness,
  ip,
  tcp,
  tcpOut,
  until,
} from './user-frames.js';

type H = ReturnType<typeof harness>;
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** A host server on 127.0.0.1 whose accepted sockets are handed to `onConn`. */
async function server(
  onConn: (s: Socket) => void = () => {},
): Promise<{ srv: Server; port: number; socks: Socket[] }> {
  const socks: Socket[] = [];
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    socks.push(s);
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.push(() => {
    for (const s of socks) s.destroy();
    srv.close();
  });
  return { srv, port: (srv.address() as AddressInfo).port, socks };
}

function net(spec = 'user', limits = {}): H {
  const h = harness(spec, { limits });
  cleanup.push(() => h.net.close());
  return h;
}

interface Guest {
  sport: number;
  dport: number;
  /** Next sequence number the guest sends. */
  seq: number;
  /** What the guest acknowledges (the NAT's next byte). */
  ack: number;
}

/** The guest's three-way handshake to 10.0.2.2:port; returns the SYN-ACK too. */
async function open(
  h: H,
  port: number,
  o: { sport?: number; mss?: number; wscale?: number; win?: number } = {},
) {
  const g: Guest = { sport: o.sport ?? 40000, dport: port, seq: 1000, ack: 0 };
  h.send(
    tcp({
      sport: g.sport,
      dport: port,
      seq: g.seq,
      flags: F.SYN,
      mss: o.mss ?? 1460,
      wscale: o.wscale,
      win: o.win,
    }),
  );
  await until(() => h.got.length > 0);
  const sa = tcpOut(h.take()[0]);
  g.seq++;
  g.ack = (sa.seq + 1) >>> 0;
  h.send(tcp({ sport: g.sport, dport: port, seq: g.seq, ack: g.ack, flags: F.ACK, win: o.win }));
  return { g, sa };
}

function data(h: H, g: Guest, payload: Uint8Array, meta = {}, win?: number): void {
  h.send(
    tcp({
      sport: g.sport,
      dport: g.dport,
      seq: g.seq,
      ack: g.ack,
      flags: F.ACK | F.PSH,
      payload,
      win,
    }),
    meta,
  );
  g.seq += payload.length;
}

describe('net=user TCP to the host', () => {
  it('handshakes with MSS and window scale, moves data both ways, closes with FINs', async () => {
    let got = '';
    const s = await server((sock) => {
      sock.setEncoding('latin1');
      sock.on('data', (d: string) => (got += d));
      sock.on('end', () => sock.end());
    });
    const h = net();
    const { g, sa } = await open(h, s.port, { mss: 1000, wscale: 2 });
    expect(sa.flags).toBe(F.SYN | F.ACK);
    expect(sa.ack).toBe(1001);
    expect([sa.src, sa.sport, sa.dst, sa.dport]).toEqual([GATEWAY, s.port, GUEST, 40000]);
    expect([...sa.options]).toEqual([2, 4, 0x05, 0xb4, 1, 3, 3, 7]); // MSS 1460, wscale 7
    data(h, g, Buffer.from('ping'));
    await until(() => got === 'ping');
    // The host sends 3000 bytes: one TSO frame that cuts into segments of the guest's MSS.
    s.socks[0].write(Buffer.alloc(3000, 0x61));
    await until(() => h.got.some((p) => tcpOut(p).payload.length > 0));
    const tso = h.take().filter((p) => tcpOut(p).payload.length > 0);
    expect(tso).toHaveLength(1);
    expect(tso[0].gso).toEqual({ type: GSO_TCPV4, size: 1000, hdrLen: 54 });
    const segs = toWireFrames(tso[0]).map(tcpOut);
    expect(segs.map((t) => t.payload.length)).toEqual([1000, 1000, 1000]);
    expect(segs.map((t) => t.seq - g.ack)).toEqual([0, 1000, 2000]);
    expect(segs.every((t) => t.ack === g.seq)).toBe(true);
    g.ack += 3000;
    // The guest closes; the host answers with its own FIN, which the guest acknowledges.
    h.send(tcp({ sport: g.sport, dport: s.port, seq: g.seq, ack: g.ack, flags: F.FIN | F.ACK }));
    g.seq++;
    await until(() => h.got.some((p) => tcpOut(p).flags & F.FIN));
    const fin = tcpOut(h.take().find((p) => tcpOut(p).flags & F.FIN)!);
    expect([fin.seq, fin.ack]).toEqual([g.ack, g.seq]);
    h.send(tcp({ sport: g.sport, dport: s.port, seq: g.seq, ack: fin.seq + 1, flags: F.ACK }));
    expect(h.net.stats()).toMatchObject({ tcp_closed: 1, tcp_connections: 0 });
  });

  it('takes a 60 KB offloaded segment whole (partial checksum not verified) without copying per byte', async () => {
    let n = 0;
    const s = await server((sock) => sock.on('data', (d: Buffer) => (n += d.length)));
    const h = net();
    const { g } = await open(h, s.port, { wscale: 7 });
    const big = Buffer.alloc(60_000, 7);
    data(h, g, big, {
      csum: { start: 34, offset: 16 },
      gso: { type: GSO_TCPV4, size: 1448, hdrLen: 54 },
    });
    await until(() => n === 60_000);
    await until(() => h.got.length > 0);
    const ack = h.take().map(tcpOut).pop()!;
    expect(ack.ack).toBe(g.seq);
    expect(h.net.stats().tcp_bytes_out).toBe(60_000);
  });

  it('refuses with a RST when nothing listens; strays get a RST too', async () => {
    const s = await server();
    const port = s.port;
    s.srv.close(); // nobody listens there now
    const h = net();
    h.send(tcp({ sport: 41000, dport: port, seq: 500, flags: F.SYN }));
    await until(() => h.got.length > 0);
    const r = tcpOut(h.take()[0]);
    expect(r.flags).toBe(F.RST | F.ACK);
    expect(r.ack).toBe(501);
    h.send(tcp({ sport: 41001, dport: port, seq: 9, ack: 777, flags: F.ACK }));
    const stray = tcpOut(h.take()[0]);
    expect([stray.flags, stray.seq]).toEqual([F.RST, 777]);
    expect(h.net.stats()).toMatchObject({
      tcp_refused: 1,
      tcp_no_connection: 1,
      tcp_connections: 0,
    });
  });

  it('restrict=on resets connections to the host and to the outside', () => {
    const h = net('user,restrict=on');
    h.send(tcp({ sport: 41000, dport: 80, seq: 1, flags: F.SYN }));
    h.send(tcp({ sport: 41001, dport: 80, seq: 1, flags: F.SYN, dst: ip('192.0.2.1') }));
    const rs = h.take().map(tcpOut);
    expect(rs.map((r) => r.flags)).toEqual([F.RST | F.ACK, F.RST | F.ACK]);
    expect(h.net.stats()).toMatchObject({ tcp_refused: 2, tcp_connections: 0 });
  });
});

describe('net=user TCP windows, loss and limits', () => {
  it('accepts no more than the window it advertised; out-of-order and old data are only ACKed', async () => {
    let n = 0;
    const s = await server((sock) => sock.on('data', (d: Buffer) => (n += d.length)));
    const h = net('user', { tcpRecvBuffer: 4096 });
    const { g, sa } = await open(h, s.port);
    expect(sa.win).toBe(4096);
    const start = g.seq;
    data(h, g, Buffer.alloc(10_000, 1), { csumValid: true });
    await until(() => n === 4096);
    g.seq = start + 4096;
    expect(h.net.stats().tcp_beyond_window).toBe(1);
    h.take();
    // Ahead of what we expect: a duplicate ACK, nothing written.
    h.send(
      tcp({
        sport: g.sport,
        dport: s.port,
        seq: g.seq + 5000,
        ack: g.ack,
        flags: F.ACK,
        payload: Buffer.from('x'),
      }),
    );
    // Entirely old: ACKed again, not written twice.
    h.send(
      tcp({
        sport: g.sport,
        dport: s.port,
        seq: g.seq - 100,
        ack: g.ack,
        flags: F.ACK,
        payload: Buffer.alloc(100),
      }),
    );
    const acks = h.take().map(tcpOut);
    expect(acks.map((a) => a.ack)).toEqual([g.seq, g.seq]);
    // A RST outside the window is ignored; an ACK of data never sent is answered, not taken.
    h.send(tcp({ sport: g.sport, dport: s.port, seq: g.seq + 100_000, flags: F.RST }));
    h.send(tcp({ sport: g.sport, dport: s.port, seq: g.seq, ack: g.ack + 50_000, flags: F.ACK }));
    await new Promise((r) => setTimeout(r, 50));
    expect(n).toBe(4096);
    expect(h.net.stats()).toMatchObject({
      tcp_out_of_order: 1,
      tcp_duplicate: 1,
      tcp_rst_out_of_window: 1,
      tcp_bad_ack: 1,
      tcp_connections: 1,
    });
  });

  it('closes the window while the host does not read, and reopens it when it drains', async () => {
    const s = await server((sock) => sock.pause());
    const limit = 64 * 1024;
    const h = net('user', { tcpRecvBuffer: limit });
    const { g } = await open(h, s.port);
    let win = limit;
    let sent = 0;
    // Send what the window allows until it closes (the host's socket buffers fill first).
    for (let i = 0; i < 2000 && win > 0; i++) {
      const n = Math.min(win, 65_000);
      data(h, g, Buffer.alloc(n), { csumValid: true });
      sent += n;
      await new Promise((r) => setImmediate(r));
      const last = h.take().map(tcpOut).pop();
      if (last) win = last.win;
    }
    expect(win).toBe(0);
    const conn = h.net.tcp.connection(GUEST, g.sport, GATEWAY, s.port)!;
    expect(conn).toBeDefined();
    expect(conn.sock.writableLength).toBeLessThanOrEqual(limit);
    expect(h.net.stats().tcp_beyond_window).toBeUndefined();
    // The host reads: the socket drains and the guest hears the window open again.
    s.socks[0].resume();
    await until(() => h.got.some((p) => tcpOut(p).win > 0), 10_000);
    expect(sent).toBeGreaterThan(limit);
  });

  it('buffers at most tcpSendBuffer for a guest that does not read, and probes its zero window', async () => {
    const s = await server((sock) => sock.write(Buffer.alloc(4 << 20)));
    const h = net('user', { tcpSendBuffer: 128 * 1024 });
    const { g } = await open(h, s.port, { win: 0 });
    const conn = h.net.tcp.connection(GUEST, g.sport, GATEWAY, s.port)!;
    const data = () => h.got.map(tcpOut).filter((t) => t.payload.length > 0);
    await until(() => conn.queued >= 128 * 1024 && data().length > 0);
    await new Promise((r) => setTimeout(r, 100));
    // Paused at the bound (one socket read may land past it), though 4 MiB wait on the host.
    expect(conn.queued).toBeLessThanOrEqual(128 * 1024 + 65_536);
    const probes = data();
    expect(probes.every((t) => t.payload.length === 1 && t.seq === g.ack)).toBe(true);
  });

  it('retransmits unacknowledged data on timeout, then resets after the retry limit', async () => {
    let closed = false;
    const s = await server((sock) => {
      sock.write('hello');
      sock.on('close', () => (closed = true));
    });
    const h = net('user', { tcpRetries: 2 });
    const { g } = await open(h, s.port);
    await until(() => h.got.filter((p) => tcpOut(p).payload.length > 0).length >= 2, 3000);
    const sent = h.got.map(tcpOut).filter((t) => t.payload.length > 0);
    expect(sent[0].seq).toBe(g.ack);
    expect(sent[1].seq).toBe(g.ack); // the same bytes again
    expect(Buffer.from(sent[1].payload).toString()).toBe('hello');
    await until(() => h.got.some((p) => tcpOut(p).flags & F.RST), 5000);
    await until(() => closed);
    expect(h.net.stats()).toMatchObject({ tcp_retries_exceeded: 1, tcp_connections: 0 });
    expect(h.net.stats().tcp_retransmit).toBe(2);
  });

  it('bounds half-open connections (SYN flood) and connections', async () => {
    const s = await server();
    const h = net('user', { tcpHalfOpen: 4, tcpConnections: 6 });
    for (let i = 0; i < 50; i++)
      h.send(tcp({ sport: 30000 + i, dport: s.port, seq: i, flags: F.SYN }));
    expect(h.net.stats()).toMatchObject({ tcp_connections: 4, drop_tcp_syn_flood: 46 });
    await until(() => h.got.length === 4); // SYN-ACKs, never answered by the flooder
    h.take();
    // Established connections count against tcpConnections: the 7th is reset.
    const h2 = net('user', { tcpConnections: 2 });
    await open(h2, s.port, { sport: 50001 });
    await open(h2, s.port, { sport: 50002 });
    h2.send(tcp({ sport: 50003, dport: s.port, seq: 1, flags: F.SYN }));
    expect(tcpOut(h2.take()[0]).flags).toBe(F.RST | F.ACK);
    expect(h2.net.stats()).toMatchObject({ drop_tcp_connection_limit: 1, tcp_connections: 2 });
  });

  it('shares tcpRecvTotal between connections: the more there are, the smaller each window', async () => {
    const s = await server();
    const h = net('user', { tcpRecvBuffer: 40_000, tcpRecvTotal: 60_000 });
    const wins: number[] = [];
    for (const sport of [51001, 51002, 51003]) wins.push((await open(h, s.port, { sport })).sa.win);
    expect(wins).toEqual([40_000, 30_000, 20_000]);
  });

  it('a guest RST resets the host socket; closing the network ends every socket', async () => {
    const closed: boolean[] = [];
    const s = await server((sock) => {
      const i = closed.push(false) - 1;
      sock.on('close', () => (closed[i] = true));
      sock.on('end', () => (closed[i] = true));
    });
    const h = net();
    const a = await open(h, s.port, { sport: 42001 });
    await open(h, s.port, { sport: 42002 });
    await until(() => closed.length === 2);
    h.send(tcp({ sport: 42001, dport: s.port, seq: a.g.seq, flags: F.RST }));
    await until(() => closed[0]);
    expect(closed[1]).toBe(false);
    h.net.close();
    await until(() => closed[1]);
    expect(h.net.stats().tcp_connections).toBe(0);
  });
});

describe('net=user port forwards', () => {
  async function freePort(): Promise<number> {
    const s = await server();
    s.srv.close();
    return s.port;
  }

  for (const spec of ['user', 'user,restrict=on']) {
    it(`${spec}: a host connection to the forward becomes a SYN to the guest, data flows both ways`, async () => {
      const port = await freePort();
      const h = net(`${spec},hostfwd=tcp::${port}-:80`);
      await h.net.forwards.ready;
      expect(h.net.forwards.failed).toEqual([]);
      h.send(tcp({ sport: 9, dport: 9, seq: 0, flags: F.RST })); // the guest's MAC is learnt
      const client = netConnect(port, '127.0.0.1');
      cleanup.push(() => client.destroy());
      let got = '';
      client.setEncoding('latin1');
      client.on('data', (d: string) => (got += d));
      await until(() => h.got.length > 0);
      const syn = tcpOut(h.take()[0]);
      expect(syn.flags).toBe(F.SYN);
      expect([syn.src, syn.dst, syn.dport]).toEqual([GATEWAY, GUEST, 80]);
      expect([...syn.options.subarray(0, 4)]).toEqual([2, 4, 0x05, 0xb4]);
      // The guest accepts.
      const g = { sport: 80, dport: syn.sport, seq: 7000, ack: syn.seq + 1 };
      h.send(
        tcp({
          sport: 80,
          dport: syn.sport,
          seq: g.seq,
          ack: g.ack,
          flags: F.SYN | F.ACK,
          mss: 1460,
          src: GUEST,
          dst: GATEWAY,
        }),
      );
      g.seq++;
      expect(tcpOut(h.take()[0]).flags).toBe(F.ACK);
      h.send(tcp({ ...g, flags: F.ACK | F.PSH, payload: Buffer.from('from guest') }));
      await until(() => got === 'from guest');
      client.write('from host');
      await until(() => h.got.some((p) => tcpOut(p).payload.length > 0));
      const seg = h
        .take()
        .map(tcpOut)
        .find((t) => t.payload.length > 0)!;
      expect(Buffer.from(seg.payload).toString()).toBe('from host');
      expect(h.net.stats()).toMatchObject({ hostfwd_connections: 1, tcp_established: 1 });
    });
  }

  it("asks for the guest's MAC by ARP when the guest has sent nothing yet", async () => {
    const port = await freePort();
    const h = net(`user,hostfwd=tcp::${port}-:22`);
    await h.net.forwards.ready;
    const client = netConnect(port, '127.0.0.1');
    cleanup.push(() => client.destroy());
    await until(() => h.got.length > 0);
    const ask = h.take()[0].data;
    expect([...ask.subarray(0, 6)]).toEqual([...BCAST]);
    expect(get16(ask, 12)).toBe(0x0806);
    expect(get16(ask, 20)).toBe(1); // who-has
    expect([...ask.subarray(28, 32)]).toEqual([10, 0, 2, 2]);
    expect([...ask.subarray(38, 42)]).toEqual([10, 0, 2, 15]);
    // The guest answers; the SYN's retransmission then reaches it.
    const reply = ask.slice();
    reply.set(GW_MAC, 0);
    reply.set(GUEST_MAC, 6);
    reply[21] = 2;
    reply.set(GUEST_MAC, 22);
    reply.set([10, 0, 2, 15], 28);
    reply.set(GW_MAC, 32);
    reply.set([10, 0, 2, 2], 38);
    h.send(reply);
    await until(() => h.got.length > 0);
    const syn = tcpOut(h.take()[0]);
    expect([syn.flags, syn.dst, syn.dport]).toEqual([F.SYN, GUEST, 22]);
    expect(h.net.stats()).toMatchObject({ arp_requests: 1, tcp_retransmit: 1 });
  });

  it('stops listening when the network closes', async () => {
    const port = await freePort();
    const h = net(`user,hostfwd=tcp::${port}-:80`);
    await h.net.forwards.ready;
    h.net.close();
    const err = await new Promise<string>((r) => {
      const c = netConnect(port, '127.0.0.1');
      c.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? ''));
      c.on('connect', () => r('connected'));
    });
    expect(err).toBe('ECONNREFUSED');
  });

  it('reports a port it cannot listen on', async () => {
    const s = await server();
    const h = net(`user,hostfwd=tcp::${s.port}-:80`);
    await h.net.forwards.ready;
    expect(h.net.forwards.failed).toHaveLength(1);
    expect(h.net.stats().hostfwd_listen_error).toBe(1);
  });
});
