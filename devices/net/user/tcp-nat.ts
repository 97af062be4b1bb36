/**
 * The table of proxied TCP connections: a guest SYN opens a host socket (and becomes a TcpConn
 * once the table has room), a host connection on a port forward becomes a SYN to the guest,
 * segments for no connection get a RST. Bounds: `tcpConnections` at once (a SYN beyond gets a
 * RST, a forwarded connection beyond is closed) and `tcpHalfOpen` guest connections still
 * opening (a SYN flood beyond is dropped). ACKs and socket writes of one burst of guest frames
 * are coalesced into one flush per connection (after the burst, on the event loop).
 */
import { Socket } from 'node:net';
import type { NetPacket } from '../packet.js';
import { GATEWAY, GATEWAY_MAC, type Ip4, type UserNetLimits } from './config.js';
import type { Counters } from './counters.js';
import type { Ipv4 } from './ipv4.js';
import { GATEWAY6, addrKey, type Ipv6 } from './ipv6.js';
import { TcpConn, type ConnOwner } from './tcp-conn.js';
import { ACK, FIN, RST, SYN, tcpPacket, type IpAddr, type TcpSegment } from './tcp-segment.js';

/** Where a guest connection goes on the host. */
export interface TcpTarget {
  host: string;
  port: number;
}

/** Ports the gateway uses as the source of forwarded connections. */
const FWD_PORT_FIRST = 49152;
const FWD_PORTS = 65536 - FWD_PORT_FIRST;

export class TcpNat implements ConnOwner {
  private readonly conns = new Map<string, TcpConn>();
  private readonly toFlush = new Set<TcpConn>();
  private flushQueued = false;
  /** Where the search for a free forward source port starts: random, as a host stack does. */
  private nextFwdPort = Math.floor(Math.random() * FWD_PORTS);

  constructor(
    readonly limits: UserNetLimits,
    readonly counters: Counters,
    private readonly out: (p: NetPacket) => void,
    private readonly guestMac: () => Uint8Array | undefined,
    private readonly askGuestMac: (ip: Ip4) => void,
    /** The NIC's `rxFrameAlign` (NetBackend), for where connections cut their streams. */
    private readonly frameAlign: () => number | undefined = () => undefined,
  ) {}

  get size(): number {
    return this.conns.size;
  }

  /** Connections still opening (for the half-open bound). */
  get halfOpen(): number {
    let n = 0;
    for (const c of this.conns.values()) if (c.halfOpen) n++;
    return n;
  }

  /** The connection a guest 4-tuple belongs to (tests). */
  connection(guestIp: IpAddr, gport: number, peer: IpAddr, pport: number): TcpConn | undefined {
    return this.conns.get(key(guestIp, gport, peer, pport));
  }

  /**
   * A segment from the guest. `target` says where a new connection to (dst, dport) goes on the
   * host, or undefined to refuse it with a RST.
   */
  input(
    ip: Ipv4 | Ipv6,
    s: TcpSegment,
    target: (dst: IpAddr, dport: number) => TcpTarget | undefined,
  ) {
    const k = key(ip.src, s.sport, ip.dst, s.dport);
    const c = this.conns.get(k);
    if (c) return c.segment(s);
    if ((s.flags & (SYN | ACK | RST | FIN)) !== SYN) {
      if (!(s.flags & RST)) {
        this.counters.count('tcp_no_connection');
        this.reset(ip, s);
      }
      return;
    }
    const t = target(ip.dst, s.dport);
    if (!t) {
      this.counters.count('tcp_refused');
      return this.reset(ip, s);
    }
    if (this.conns.size >= this.limits.tcpConnections) {
      this.counters.count('drop_tcp_connection_limit');
      return this.reset(ip, s);
    }
    if (this.halfOpen >= this.limits.tcpHalfOpen) {
      this.counters.count('drop_tcp_syn_flood');
      return;
    }
    const sock = new Socket({ allowHalfOpen: true });
    const conn = new TcpConn(this, k, ip.src, s.sport, ip.dst, s.dport, sock, s);
    this.conns.set(k, conn);
    sock.connect(t.port, t.host);
  }

  /**
   * A host connection accepted on a port forward: offer it to the guest's (addr, port), from
   * 10.0.2.2 or, for an IPv6 address, from fec0::2.
   */
  fromHost(sock: Socket, guestIp: IpAddr, guestPort: number): void {
    if (this.conns.size >= this.limits.tcpConnections) {
      this.counters.count('drop_tcp_connection_limit');
      sock.destroy();
      return;
    }
    // Our SYN needs the guest's MAC: until an ARP reply brings it, the SYN's retransmissions
    // are dropped (and the connection reset if it never comes).
    // (Over IPv6 the guest has sent its router solicitation, so its MAC is known.)
    if (!this.guestMac() && typeof guestIp === 'number') this.askGuestMac(guestIp);
    const gw = typeof guestIp === 'number' ? GATEWAY : GATEWAY6;
    let port = 0;
    for (let i = 0; i < FWD_PORTS && !port; i++) {
      const p = FWD_PORT_FIRST + ((this.nextFwdPort + i) % FWD_PORTS);
      if (!this.conns.has(key(guestIp, guestPort, gw, p))) port = p;
    }
    this.nextFwdPort = (port - FWD_PORT_FIRST + 1) % FWD_PORTS;
    this.counters.count('hostfwd_connections');
    const k = key(guestIp, guestPort, gw, port);
    // Registered before the constructor's SYN, whose answer may come back synchronously.
    const conn = new TcpConn(this, k, guestIp, guestPort, gw, port, sock, undefined);
    if (conn.state !== 'closed') this.conns.set(k, conn);
  }

  /** Closes every host socket (the back end is going away). */
  close(): void {
    for (const c of [...this.conns.values()]) c.destroy();
    this.toFlush.clear();
  }

  // ---- ConnOwner ----

  emit(build: (guestMac: Uint8Array, ourMac: Uint8Array) => NetPacket): void {
    const mac = this.guestMac();
    if (mac) this.out(build(mac, GATEWAY_MAC));
  }

  rxFrameAlign(): number | undefined {
    return this.frameAlign();
  }

  removed(c: TcpConn): void {
    if (this.conns.get(c.key) === c) this.conns.delete(c.key);
    this.toFlush.delete(c);
  }

  wantFlush(c: TcpConn): void {
    this.toFlush.add(c);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => this.flush());
  }

  /** Runs the coalesced ACKs and socket writes now (tests call it instead of waiting). */
  flush(): void {
    this.flushQueued = false;
    const cs = [...this.toFlush];
    this.toFlush.clear();
    for (const c of cs) c.flush();
  }

  /** A RST for a segment that belongs to no connection (RFC 793's reset generation). */
  private reset(ip: Ipv4 | Ipv6, s: TcpSegment): void {
    const len = s.payload.length + (s.flags & SYN ? 1 : 0) + (s.flags & FIN ? 1 : 0);
    const h = {
      src: ip.dst,
      sport: s.dport,
      dst: ip.src,
      dport: s.sport,
      seq: s.flags & ACK ? s.ack : 0,
      ack: s.flags & ACK ? 0 : (s.seq + len) >>> 0,
      flags: s.flags & ACK ? RST : RST | ACK,
      win: 0,
    };
    this.emit((gm, om) => tcpPacket(gm, om, h, 0));
  }
}

const key = (guestIp: IpAddr, gport: number, peer: IpAddr, pport: number): string =>
  `${addrKey(guestIp)}:${gport}>${addrKey(peer)}:${pport}`;
