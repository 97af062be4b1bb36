/**
 * Echo requests beyond the gateway (`ping 8.8.8.8`, `ping6 2001:db8::1`): relayed through a host
 * ICMP echo socket (the native addon's `icmpEchoOpen`: an unprivileged ICMP datagram socket, or
 * a raw ICMP socket when the kernel refuses that and the process may open one), one per address
 * family per NAT, opened at the first echo that needs it.
 *
 * The host socket has one echo identifier of its own (a datagram socket's is the kernel's), so
 * each request the guest sends goes out with a sequence number of ours, and the reply (or an ICMP
 * error quoting the request) is mapped back to the guest's address, identifier and sequence.
 * Bounded: at most `limits.icmpEchoes` requests outstanding per NAT (a new one evicts the oldest),
 * each forgotten after `limits.icmpTimeoutMs`, payloads up to `limits.icmpPayload` bytes.
 *
 * Where no socket can be opened (no addon, ping_group_range excludes us and we may not open raw
 * sockets) echoes are counted as dropped (`drop_icmp_not_relayed`) and the reason is logged once.
 */
import { loadHostNative } from '../../host-native.js';
import { internetChecksum, put16 } from '../offload.js';
import { GATEWAY_MAC, parseIp4, formatIp4, type Ip4, type UserNetLimits } from './config.js';
import type { Counters } from './counters.js';
import { ETH_HLEN } from './ethernet.js';
import {
  L4_OFF6,
  PROTO_ICMPV6,
  formatIp6,
  ipv6Frame,
  parseIp6,
  sameIp6,
  setL4Checksum6,
  type Ip6,
} from './ipv6.js';
import { L4_OFF, PROTO_ICMP, ipv4Frame } from './ipv4.js';

/** What a host echo socket hands back: a reply to, or an ICMP error about, one of our echoes. */
export interface EchoMessage {
  /** Who sent it: the echoed address, or (an error) the router or host that reports it. */
  from: string;
  type: number;
  code: number;
  /** The sequence number of our request it answers (an error: of the request it quotes). */
  seq: number;
  /** An echo reply's data; null for an error. */
  payload: Uint8Array | null;
  /** The TTL / hop limit it arrived with; -1 when unknown. */
  ttl: number;
  /** An error's second header word (the next-hop MTU, the pointer of a parameter problem). */
  info: number;
}

/** A host ICMP echo socket of one address family (see native/wasmvisor-native.c). */
export interface EchoSocket {
  /** 'dgram': unprivileged ICMP datagram socket; 'raw': raw ICMP socket. */
  readonly kind: string;
  /** Sends an echo request with our identifier; throws with `code` (errno name) on failure. */
  send(addr: string, seq: number, payload: Uint8Array, ttl: number): void;
  close(): void;
}

/** Opens a host echo socket; throws an Error that says why it cannot. */
export type EchoSocketOpener = (v6: boolean, onMessage: (m: EchoMessage) => void) => EchoSocket;

/** What a user is told when neither kind of ICMP socket may be opened. */
export const ICMP_PERMISSION_HINT =
  'allow ICMP datagram sockets for your group (sysctl -w net.ipv4.ping_group_range="0 2147483647") or run with CAP_NET_RAW';

/** The host's echo sockets, through the native addon. */
export const hostEchoSocket: EchoSocketOpener = (v6, onMessage) => {
  const r = loadHostNative();
  if (!r.native) throw new Error(`the native addon is not loaded (${r.reason})`);
  const open = r.native.icmpEchoOpen;
  if (!open) throw new Error('the native addon predates ICMP sockets (rebuild: native/build.mjs)');
  try {
    return open(v6, (from, type, code, seq, payload, ttl, info) =>
      onMessage({ from, type, code, seq, payload, ttl, info }),
    );
  } catch (e) {
    const err = e as Error & { code?: string; rawCode?: string };
    const denied =
      (err.code === 'EACCES' || err.code === 'EPERM') &&
      (err.rawCode === 'EPERM' || err.rawCode === 'EACCES');
    throw new Error(`${err.message}${denied ? `: ${ICMP_PERMISSION_HINT}` : ''}`);
  }
};

const ECHO_REPLY = 0;
const ECHO6_REPLY = 129;
/** ICMP "fragmentation needed" and ICMPv6 "packet too big": the host's path, not the guest's. */
const FRAG_NEEDED = 4;
const PACKET_TOO_BIG6 = 2;
const UNREACHABLE = 3;

/** One request in flight: where the reply goes, and what an error about it must quote. */
interface Pending {
  v6: boolean;
  /** The guest's address it came from, and where it went. */
  guest: Ip4 | Ip6;
  dst: Ip4 | Ip6;
  id: number;
  seq: number;
  /** The guest's IP header and the first 8 bytes of its ICMP message (what an error quotes). */
  quote: Uint8Array;
  deadline: number;
}

/** Per family: the host socket (or why there is none) and the requests it has in flight. */
interface Family {
  sock?: EchoSocket;
  unavailable?: string;
  pending: Map<number, Pending>;
  nextSeq: number;
}

export class IcmpRelay {
  private readonly fam: [Family, Family] = [
    { pending: new Map(), nextSeq: 1 },
    { pending: new Map(), nextSeq: 1 },
  ];
  private closed = false;

  constructor(
    private readonly limits: UserNetLimits,
    private readonly counters: Counters,
    private readonly open: EchoSocketOpener | null,
    private readonly out: (frame: Uint8Array) => void,
    private readonly guestMac: () => Uint8Array | undefined,
    private readonly log: ((m: string) => void) | undefined,
  ) {}

  /** Requests in flight (both families), those whose time is up forgotten first. */
  get size(): number {
    this.expire(Date.now());
    return this.inFlight();
  }

  private inFlight(): number {
    return this.fam[0].pending.size + this.fam[1].pending.size;
  }

  /** Why echoes beyond the gateway are not relayed (after a socket failed to open). */
  get unavailable(): string | undefined {
    return this.fam[0].unavailable ?? this.fam[1].unavailable;
  }

  /** Which kind of host socket relays echoes ('dgram' or 'raw'), once one is open. */
  get kind(): string | undefined {
    return this.fam[0].sock?.kind ?? this.fam[1].sock?.kind;
  }

  /**
   * Relays a checked echo request (IPv4: d[ipOff, end) with the ICMP message at l4; IPv6: the
   * ICMPv6 message at l4) from the guest's `src` to `dst`; `ttl` is the guest's TTL / hop limit.
   * Returns a drop reason, or undefined when it went out.
   */
  echo(
    v6: boolean,
    d: Uint8Array,
    ipOff: number,
    l4: number,
    end: number,
    src: Ip4 | Ip6,
    dst: Ip4 | Ip6,
    ttl: number,
  ): string | undefined {
    if (this.closed) return 'icmp_not_relayed';
    const payload = d.subarray(l4 + 8, end);
    if (payload.length > this.limits.icmpPayload) return 'icmp_too_big';
    const f = this.fam[v6 ? 1 : 0];
    const sock = this.socket(v6, f);
    if (!sock) return 'icmp_not_relayed';
    const now = Date.now();
    this.expire(now);
    while (this.inFlight() > 0 && this.inFlight() >= this.limits.icmpEchoes) this.evictOldest();
    let seq = f.nextSeq;
    while (f.pending.has(seq)) seq = (seq + 1) & 0xffff;
    f.nextSeq = (seq + 1) & 0xffff;
    const addr = typeof dst === 'number' ? formatIp4(dst) : formatIp6(dst);
    try {
      sock.send(addr, seq, payload, ttl);
    } catch (e) {
      const code = (e as { code?: string }).code;
      this.counters.count(`drop_icmp_send_${code ? code.toLowerCase() : 'error'}`);
      return undefined;
    }
    f.pending.set(seq, {
      v6,
      guest: src,
      dst,
      id: (d[l4 + 4] << 8) | d[l4 + 5],
      seq: (d[l4 + 6] << 8) | d[l4 + 7],
      quote: d.slice(ipOff, l4 + 8),
      deadline: now + this.limits.icmpTimeoutMs,
    });
    this.counters.count(v6 ? 'icmp6_echo_relayed' : 'icmp_echo_relayed');
    return undefined;
  }

  /** Closes the host sockets and forgets what is in flight. Idempotent. */
  close(): void {
    this.closed = true;
    for (const f of this.fam) {
      f.pending.clear();
      try {
        f.sock?.close();
      } catch {
        // already closed
      }
      f.sock = undefined;
    }
  }

  /** The family's socket, opened on first use; undefined (reason logged once) when it cannot be. */
  private socket(v6: boolean, f: Family): EchoSocket | undefined {
    if (f.sock || f.unavailable) return f.sock;
    if (!this.open) {
      f.unavailable = 'disabled';
      return undefined;
    }
    try {
      f.sock = this.open(v6, (m) => {
        try {
          this.fromHost(v6, m);
        } catch {
          this.counters.count('drop_internal_error');
        }
      });
      this.counters.count(v6 ? 'icmp6_sockets' : 'icmp_sockets');
    } catch (e) {
      f.unavailable = (e as Error).message;
      this.log?.(
        `net=user: ${v6 ? 'ping6' : 'ping'} beyond the gateway is not relayed: ${f.unavailable}`,
      );
    }
    return f.sock;
  }

  /** Forgets requests whose time is up (they are in the order sent, so the oldest come first). */
  private expire(now: number): void {
    for (const f of this.fam) {
      for (const [seq, p] of f.pending) {
        if (p.deadline > now) break;
        f.pending.delete(seq);
        this.counters.count('icmp_echo_timeouts');
      }
    }
  }

  /** Forgets the request sent first (of either family) to make room for a new one. */
  private evictOldest(): void {
    let oldest: { f: Family; seq: number; deadline: number } | undefined;
    for (const f of this.fam) {
      const first = f.pending.entries().next();
      if (first.done) continue;
      const [seq, p] = first.value;
      if (!oldest || p.deadline < oldest.deadline) oldest = { f, seq, deadline: p.deadline };
    }
    if (!oldest) return;
    oldest.f.pending.delete(oldest.seq);
    this.counters.count('drop_icmp_echo_evicted');
  }

  /** A message from a host socket: back to the guest as a reply or error, or dropped. */
  private fromHost(v6: boolean, m: EchoMessage): void {
    if (this.closed) return;
    const f = this.fam[v6 ? 1 : 0];
    const p = f.pending.get(m.seq);
    const mac = this.guestMac();
    if (!p || p.deadline <= Date.now() || !mac) return this.counters.count('drop_icmp_unmatched');
    const from = v6 ? parseIp6(m.from) : parseIp4(m.from);
    if (from === undefined) return this.counters.count('drop_icmp_unmatched');
    // Leave the guest one hop fewer than the host saw: the NAT is a router on the way.
    const ttl = m.ttl > 1 ? m.ttl - 1 : 64;
    if (m.payload) {
      const same = typeof from === 'number' ? from === p.dst : sameIp6(from, p.dst as Ip6);
      if (!same) return this.counters.count('drop_icmp_unmatched');
      f.pending.delete(m.seq);
      if (m.payload.length > this.limits.icmpPayload)
        return this.counters.count('drop_icmp_too_big');
      this.counters.count(v6 ? 'icmp6_echo_relayed_replies' : 'icmp_echo_relayed_replies');
      return this.out(
        this.frame(v6, mac, from, p, v6 ? ECHO6_REPLY : ECHO_REPLY, 0, 0, m.payload, ttl),
      );
    }
    // An error about our request. Path MTU is the host's business: the guest's packets were not
    // too big for its link, the host fragments them.
    if (v6 ? m.type === PACKET_TOO_BIG6 : m.type === UNREACHABLE && m.code === FRAG_NEEDED) {
      return this.counters.count('drop_icmp_frag_needed');
    }
    f.pending.delete(m.seq);
    this.counters.count(v6 ? 'icmp6_errors_relayed' : 'icmp_errors_relayed');
    this.out(this.frame(v6, mac, from, p, m.type, m.code, m.info, null, ttl));
  }

  /**
   * The frame for the guest: an echo reply (`payload`) with the guest's identifier and sequence,
   * or an ICMP error from `from` quoting the guest's own request.
   */
  private frame(
    v6: boolean,
    mac: Uint8Array,
    from: Ip4 | Ip6,
    p: Pending,
    type: number,
    code: number,
    info: number,
    payload: Uint8Array | null,
    ttl: number,
  ): Uint8Array {
    const body = payload ?? p.quote;
    const len = 8 + body.length;
    let f: Uint8Array;
    let at: number;
    if (v6) {
      f = ipv6Frame(mac, GATEWAY_MAC, from as Ip6, p.guest as Ip6, PROTO_ICMPV6, len, ttl);
      at = L4_OFF6;
    } else {
      f = ipv4Frame(mac, GATEWAY_MAC, from as Ip4, p.guest as Ip4, PROTO_ICMP, len);
      f[ETH_HLEN + 8] = ttl;
      put16(f, ETH_HLEN + 10, 0);
      put16(f, ETH_HLEN + 10, internetChecksum(f, ETH_HLEN, ETH_HLEN + 20));
      at = L4_OFF;
    }
    f[at] = type;
    f[at + 1] = code;
    if (payload) {
      put16(f, at + 4, p.id);
      put16(f, at + 6, p.seq);
    } else {
      put16(f, at + 4, info >>> 16);
      put16(f, at + 6, info & 0xffff);
    }
    f.set(body, at + 8);
    if (v6) setL4Checksum6(f, 2, from as Ip6, p.guest as Ip6, PROTO_ICMPV6);
    else put16(f, at + 2, internetChecksum(f, at, f.length));
    return f;
  }
}
