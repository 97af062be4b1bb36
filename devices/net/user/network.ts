/**
 * `net=user`: user-mode NAT, QEMU's "slirp" network in TypeScript. The NIC's frames end here:
 * ARP and ICMP echo for the gateway, DHCP, DNS forwarded to the host's resolver, UDP and TCP
 * proxied over host sockets (10.0.2.2 is the host's 127.0.0.1), echo to other addresses relayed
 * through a host ICMP socket (icmp-relay.ts), port forwards from the host, and with `tftp=DIR`
 * a read-only TFTP server at 10.0.2.2:69 (tftp.ts; `bootfile=` names a file in DHCP's replies).
 * IPv6 on fec0::/64: neighbour discovery and router advertisements (the guest autoconfigures),
 * ping6 to the gateway (and relayed beyond it), TCP and UDP to fec0::2 proxied to the host's
 * ::1, DNS at fec0::3.
 * The guest's IP fragments are reassembled (bounded: reassembly.ts), and what we send it that is
 * larger than its MTU is fragmented (fragment.ts).
 * With restrict=on the guest reaches only the built-in services; forwards still work.
 *
 * Every frame is untrusted: it is checked layer by layer and anything malformed, unsupported or
 * over a limit is dropped and counted (`stats()`), never thrown past send().
 */
import type { NetBackend } from '../backend.js';
import { finishChecksum, get16, internetChecksum, put16 } from '../offload.js';
import { MAX_PACKET, type NetPacket } from '../packet.js';
import { arpRequest, handleArp } from './arp.js';
import {
  BROADCAST,
  DEFAULT_LIMITS,
  DNS,
  GATEWAY,
  GATEWAY_MAC,
  LOOPBACK,
  NETMASK,
  NETWORK,
  formatIp4,
  parseUserSpec,
  type Ip4,
  type UserNetLimits,
  type UserNetSpec,
} from './config.js';
import { Counters } from './counters.js';
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, dhcpAnswer } from './dhcp.js';
import {
  DNS_PORT,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
  dnsErrorReply,
  hostResolver,
  type Resolver,
} from './dns.js';
import {
  ETH_HLEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  etherType,
  isForUs,
  sameMac,
} from './ethernet.js';
import { GUEST_MTU, PROTO_FRAGMENT6, fragmentForGuest } from './fragment.js';
import { PortForwards } from './hostfwd.js';
import { ECHO_REQUEST, checkIcmp, icmpReply } from './icmp.js';
import { IcmpRelay, hostEchoSocket, type EchoSocketOpener } from './icmp-relay.js';
import { ICMPV6_ECHO_REQUEST, checkIcmpv6, icmpv6EchoReply } from './icmpv6.js';
import {
  DNS6,
  ETHERTYPE_IPV6,
  GATEWAY6,
  HOST_LOOPBACK6,
  PREFIX6,
  PROTO_ICMPV6,
  formatIp6,
  isExtensionHeader,
  isOurIp6,
  parseIpv6,
  sameIp6,
  type Ip6,
  type IpAddr,
  type Ipv6,
} from './ipv6.js';
import { ND_ROUTER_SOLICIT, handleNdp, isNdp } from './ndp.js';
import { PROTO_ICMP, PROTO_TCP, PROTO_UDP, get32, parseIpv4, type Ipv4 } from './ipv4.js';
import { Reassembly } from './reassembly.js';
import { TftpServer } from './tftp.js';
import { TcpNat, type TcpTarget } from './tcp-nat.js';
import { parseTcp } from './tcp-segment.js';
import { parseUdp, udpFrame, type Udp } from './udp.js';
import { UdpForwards } from './udp-forward.js';
import { UdpNat, type UdpDeliver } from './udp-nat.js';

export interface UserNetOptions {
  /** Smaller bounds (tests). */
  limits?: Partial<UserNetLimits>;
  /** DNS server to forward to; null: none (SERVFAIL); default: /etc/resolv.conf's. */
  resolver?: Resolver | null;
  /**
   * How echo requests beyond the gateway reach the host's ICMP sockets; default: the native
   * addon's (hostEchoSocket); null: they are not relayed (counted as dropped).
   */
  echoSocket?: EchoSocketOpener | null;
  /** Where to say, once, why ping beyond the gateway does not work. */
  log?: (message: string) => void;
}

export class UserNetwork implements NetBackend {
  readonly config: UserNetSpec;
  readonly counters = new Counters();
  readonly limits: UserNetLimits;
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  rxFrameAlign: (() => number | undefined) | undefined;
  readonly udp: UdpNat;
  readonly tcp: TcpNat;
  readonly forwards: PortForwards;
  readonly udpForwards: UdpForwards;
  /** Echo requests beyond the gateway, through the host's ICMP sockets. */
  readonly icmp: IcmpRelay;
  /** The guest's IP fragments (both families) waiting for the rest of their datagram. */
  readonly reassembly: Reassembly;
  /** The TFTP server at 10.0.2.2:69 and fec0::2:69 (`tftp=DIR`); undefined without. */
  readonly tftp: TftpServer | undefined;
  private readonly resolver: Resolver | undefined;
  private guestMac: Uint8Array | undefined;
  /** The last fec0::/64 address the guest sent from (its SLAAC address, for IPv6 forwards). */
  private guestAddr6: Ip6 | undefined;
  private closed = false;

  /** Opens the network a `user[,...]` spec describes; throws NetSpecError on a bad spec. */
  constructor(
    readonly spec: string,
    opts: UserNetOptions = {},
  ) {
    this.config = parseUserSpec(spec);
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    // First: it throws NetSpecError when DIR is no directory, before any socket is opened.
    this.tftp =
      this.config.tftp === undefined
        ? undefined
        : new TftpServer(
            this.config.tftp,
            this.limits,
            this.counters,
            (src, sport, dst, dport, data) => {
              if (this.guestMac)
                this.toGuest({
                  data: udpFrame(this.guestMac, GATEWAY_MAC, src, sport, dst, dport, data),
                });
            },
          );
    this.resolver = opts.resolver === undefined ? hostResolver() : (opts.resolver ?? undefined);
    this.reassembly = new Reassembly(this.limits, this.counters);
    const out = (p: NetPacket): void => this.toGuest(p);
    const deliverUdp: UdpDeliver = (src, sport, dst, dport, data) => {
      if (this.guestMac)
        out({ data: udpFrame(this.guestMac, GATEWAY_MAC, src, sport, dst, dport, data) });
    };
    this.udp = new UdpNat(this.limits, this.counters, deliverUdp);
    this.tcp = new TcpNat(
      this.limits,
      this.counters,
      out,
      () => this.guestMac,
      (ip) => {
        this.counters.count('arp_requests');
        out({ data: arpRequest(GATEWAY_MAC, GATEWAY, ip) });
      },
      () => this.rxFrameAlign?.(),
    );
    this.icmp = new IcmpRelay(
      this.limits,
      this.counters,
      opts.echoSocket === undefined ? hostEchoSocket : opts.echoSocket,
      (data) => out({ data }),
      () => this.guestMac,
      opts.log,
    );
    this.udpForwards = new UdpForwards(this.limits, this.counters, deliverUdp, () => this.udp.size);
    this.forwards = new PortForwards(this.config.hostfwd, this.counters, {
      tcp: (sock, rule) => {
        if (!rule.guestAddr6) return this.tcp.fromHost(sock, rule.guestAddr, rule.guestPort);
        const to = rule.guestAddr6 === 'auto' ? this.guestIp6() : rule.guestAddr6;
        if (!to || !this.guestMac) {
          this.counters.count('drop_hostfwd6_no_guest_address');
          return sock.destroy();
        }
        this.tcp.fromHost(sock, to, rule.guestPort);
      },
      udp: (msg, from, rule, sock) => this.udpForwards.fromHost(msg, from, rule, sock),
    });
  }

  get carrier(): boolean {
    return !this.closed;
  }

  /** A frame from the guest's NIC. Never throws: what cannot be handled is counted. */
  send(p: NetPacket): void {
    if (this.closed) return;
    try {
      this.input(p);
    } catch {
      this.counters.count('drop_internal_error');
    }
  }

  /** What the network did and dropped, plus its live connection counts. */
  stats(): Record<string, number> {
    const udp = this.udp.size + this.udpForwards.size;
    const icmp = this.icmp.size; // forgets timed-out echoes first (counted)
    return {
      ...this.counters.values,
      tcp_connections: this.tcp.size,
      udp_flows: udp,
      icmp_echoes: icmp,
      frag_datagrams: this.reassembly.size,
      frag_bytes: this.reassembly.bytes,
      ...(this.tftp ? { tftp_sessions: this.tftp.size } : {}),
    };
  }

  /** Closes every host socket and listener. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.forwards.close();
    this.tcp.close();
    this.udp.close();
    this.udpForwards.close();
    this.icmp.close();
    this.reassembly.close();
    this.tftp?.close();
  }

  /** A frame for the guest; an IP packet beyond its MTU leaves as fragments (not TSO frames). */
  private toGuest(p: NetPacket): void {
    if (this.closed) return;
    if (p.gso || p.data.length <= ETH_HLEN + GUEST_MTU) {
      this.counters.count('frames_to_guest');
      this.onReceive?.(p);
      return;
    }
    // Cut after the checksum is final: the guest checks it over the reassembled datagram.
    if (p.csum) finishChecksum(p.data, p.csum.start, p.csum.offset);
    this.counters.count('frag_out_datagrams');
    for (const data of fragmentForGuest(p.data)) {
      this.counters.count('frames_to_guest');
      this.counters.count('frag_out');
      this.onReceive?.({ data });
    }
  }

  private drop(reason: string): void {
    this.counters.count(`drop_${reason}`);
  }

  private input(p: NetPacket): void {
    const d = p.data;
    if (d.length < ETH_HLEN) return this.drop('runt');
    if (d.length > MAX_PACKET) return this.drop('giant');
    if (!isForUs(d, GATEWAY_MAC)) return this.drop('not_for_us');
    if (d[6] & 1) return this.drop('bad_source_mac');
    this.guestMac ??= d.slice(6, 12);
    if (!sameMac(this.guestMac, d, 6)) this.guestMac = d.slice(6, 12);
    const type = etherType(d);
    if (type === ETHERTYPE_ARP) {
      const r = handleArp(d, GATEWAY_MAC, (ip) => ip === GATEWAY || ip === DNS);
      if (!r) return this.drop('arp_malformed');
      if (r.reply) {
        this.counters.count('arp_replies');
        this.toGuest({ data: r.reply });
      }
      return;
    }
    // Checksums the NIC computed (TSO), or left for the far end to compute (partial), are not
    // checked again: the guest's stack asked for the offload and owns the result.
    const offloaded = p.csumValid === true || p.csum !== undefined || p.gso !== undefined;
    if (type === ETHERTYPE_IPV6) return this.ipv6Input(p, this.guestMac, offloaded);
    if (type !== ETHERTYPE_IPV4) return this.drop('ethertype');
    const ip = parseIpv4(d, ETH_HLEN, { verify: p.csumValid !== true && !p.gso, gso: !!p.gso });
    if (typeof ip === 'string') return this.drop(ip);
    if (ip.frag) return this.fragment4(p, ip, ip.frag);
    this.ipv4Input(d, ip, offloaded);
  }

  /**
   * A guest IPv4 fragment: held until its datagram is complete, which then goes where an
   * unfragmented packet would (transport checksums checked over the whole datagram).
   */
  private fragment4(p: NetPacket, ip: Ipv4, frag: NonNullable<Ipv4['frag']>): void {
    // A partial checksum cannot be finished over one piece of a datagram.
    if (p.csum) return this.drop('ip_fragment_offloaded');
    const d = p.data;
    const r = this.reassembly.add({
      key: `4:${ip.src}>${ip.dst}/${ip.proto}#${frag.id}`,
      offset: frag.offset,
      more: frag.more,
      data: d.subarray(ip.l4, ip.end),
      head: frag.offset === 0 ? d.subarray(0, ip.l4) : undefined,
      maxPayload: 65535 - (ip.l4 - ip.ipOff),
      minL4: minTransportHeader(ip.proto, d, ip.l4, ip.end),
    });
    if (typeof r === 'string') return this.drop(r);
    if (!r) return;
    const f = r.frame;
    const o = ETH_HLEN;
    put16(f, o + 2, f.length - o);
    put16(f, o + 6, 0);
    put16(f, o + 10, 0);
    put16(f, o + 10, internetChecksum(f, o, r.headLen));
    const whole = parseIpv4(f, o, { verify: false, gso: false });
    if (typeof whole === 'string') return this.drop(whole);
    this.ipv4Input(f, whole, false);
  }

  /** A whole IPv4 packet from the guest (`offloaded`: the NIC vouched for its checksums). */
  private ipv4Input(d: Uint8Array, ip: Ipv4, offloaded: boolean): void {
    if (ip.proto === PROTO_UDP) return this.udpInput(d, ip, !offloaded);
    if (ip.proto === PROTO_TCP) {
      const s = parseTcp(d, ip, !offloaded);
      if (typeof s === 'string') return this.drop(s);
      return this.tcp.input(ip, s, (dst, dport) => this.tcpTarget(dst as Ip4, dport));
    }
    if (ip.proto === PROTO_ICMP) {
      if (ip.dst !== GATEWAY && ip.dst !== DNS) return this.icmpOut(d, ip);
      const r = icmpReply(d, ip, GATEWAY_MAC, this.guestMac!);
      if (typeof r === 'string') return this.drop(r);
      this.counters.count('icmp_echo_replies');
      return this.toGuest({ data: r });
    }
    this.drop('ip_protocol');
  }

  /** ICMP to an address that is not ours: an echo request goes out through the host's socket. */
  private icmpOut(d: Uint8Array, ip: Ipv4): void {
    const c = checkIcmp(d, ip);
    if (c !== true) return this.drop(c);
    if (d[ip.l4] !== ECHO_REQUEST) return this.drop('icmp_unhandled');
    if (this.config.restrict) return this.drop('restricted');
    if (hostFor(ip.dst) === undefined || ip.dst === GATEWAY) return this.drop('icmp_no_route');
    const r = this.icmp.echo(false, d, ip.ipOff, ip.l4, ip.end, ip.src, ip.dst, d[ip.ipOff + 8]);
    if (r) this.drop(r);
  }

  /**
   * IPv6 (fec0::/64): neighbour discovery and router advertisements, echo from the gateway's
   * addresses, TCP and UDP to fec0::2 proxied to the host's ::1, DNS at fec0::3 forwarded.
   */
  private ipv6Input(p: NetPacket, guestMac: Uint8Array, offloaded: boolean): void {
    const d = p.data;
    const ip = parseIpv6(d, ETH_HLEN, !!p.gso);
    if (typeof ip === 'string') return this.drop(ip);
    if (inPrefix6(ip.src) && !isOurIp6(ip.src)) this.guestAddr6 = ip.src;
    if (ip.proto === PROTO_FRAGMENT6) {
      if (p.gso || p.csum) return this.drop('ip6_fragment_offloaded');
      return this.fragment6(d, ip, guestMac);
    }
    this.ipv6Dispatch(d, ip, guestMac, offloaded, false);
  }

  /**
   * A guest IPv6 fragment (RFC 8200 4.5): held until its datagram is complete, which then goes
   * where an unfragmented packet would. Only the fixed header precedes the fragment header (we
   * refuse other extension headers), so it is the whole unfragmentable part.
   */
  private fragment6(d: Uint8Array, ip: Ipv6, guestMac: Uint8Array): void {
    if (ip.end - ip.l4 < 8) return this.drop('ip6_fragment_runt');
    const next = d[ip.l4];
    if (isExtensionHeader(next) || next === PROTO_FRAGMENT6)
      return this.drop('ip6_extension_header');
    const field = get16(d, ip.l4 + 2);
    const offset = field & ~7;
    const more = (field & 1) !== 0;
    const data = d.subarray(ip.l4 + 8, ip.end);
    let head: Uint8Array | undefined;
    if (offset === 0) {
      head = d.slice(0, ip.l4);
      head[ETH_HLEN + 6] = next;
    }
    // An atomic fragment (offset 0, no more: RFC 6946) is a whole packet already.
    const r = this.reassembly.add({
      key: `6:${formatIp6(ip.src)}>${formatIp6(ip.dst)}#${get32(d, ip.l4 + 4)}`,
      offset,
      more,
      data,
      head,
      maxPayload: 65535,
      minL4: minTransportHeader(next, d, ip.l4 + 8, ip.end),
    });
    if (typeof r === 'string') return this.drop(r);
    if (!r) return;
    const f = r.frame;
    put16(f, ETH_HLEN + 4, f.length - ETH_HLEN - 40);
    const whole = parseIpv6(f, ETH_HLEN, false);
    if (typeof whole === 'string') return this.drop(whole);
    this.ipv6Dispatch(f, whole, guestMac, false, true);
  }

  /** A whole IPv6 packet from the guest; `reassembled`: it came in fragments. */
  private ipv6Dispatch(
    d: Uint8Array,
    ip: Ipv6,
    guestMac: Uint8Array,
    offloaded: boolean,
    reassembled: boolean,
  ): void {
    if (ip.proto === PROTO_ICMPV6) {
      const c = checkIcmpv6(d, ip);
      if (c !== true) return this.drop(c);
      const type = d[ip.l4];
      if (isNdp(type)) {
        // RFC 6980: neighbour discovery never comes in fragments.
        if (reassembled) return this.drop('ndp_fragmented');
        const r = handleNdp(d, ip, GATEWAY_MAC, guestMac);
        if (typeof r === 'string') return this.drop(r);
        if (!r.reply) return this.counters.count('ndp_no_answer');
        this.counters.count(
          type === ND_ROUTER_SOLICIT ? 'ndp_router_adverts' : 'ndp_neighbor_adverts',
        );
        return this.toGuest({ data: r.reply });
      }
      if (type !== ICMPV6_ECHO_REQUEST) return this.drop('icmp6_unhandled');
      if (!isOurIp6(ip.dst)) return this.icmp6Out(d, ip);
      const r = icmpv6EchoReply(d, ip, GATEWAY_MAC, guestMac);
      if (typeof r === 'string') return this.drop(r);
      this.counters.count('icmp6_echo_replies');
      return this.toGuest({ data: r });
    }
    if (ip.proto === PROTO_TCP) {
      const s = parseTcp(d, ip, !offloaded);
      if (typeof s === 'string') return this.drop(s);
      return this.tcp.input(ip, s, (dst, dport) => this.tcpTarget6(dst as Ip6, dport));
    }
    if (ip.proto === PROTO_UDP) {
      const u = parseUdp(d, ip, !offloaded);
      if (typeof u === 'string') return this.drop(u);
      if (sameIp6(DNS6, ip.dst) && u.dport === DNS_PORT) return this.dns(ip.src, DNS6, u);
      // TFTP over IPv6 is after the restriction, as slirp has it (restrict=on drops all UDP6).
      if (this.config.restrict) return this.drop('restricted');
      if (!sameIp6(GATEWAY6, ip.dst)) return this.drop('udp6_no_route');
      if (this.tftp?.input(GATEWAY6, ip.src, u.sport, u.dport, u.payload)) return;
      const to = { host: HOST_LOOPBACK6, port: u.dport };
      return this.udp.send(ip.src, u.sport, ip.dst, u.dport, to, u.payload);
    }
    this.drop('ip6_protocol');
  }

  /** An ICMPv6 echo request (checked) to an address that is not ours: out through the host. */
  private icmp6Out(d: Uint8Array, ip: Ipv6): void {
    if (ip.end - ip.l4 < 8) return this.drop('icmp6_runt');
    if (this.config.restrict) return this.drop('restricted');
    if (!routable6(ip.dst)) return this.drop('icmp6_no_route');
    const r = this.icmp.echo(true, d, ip.ipOff, ip.l4, ip.end, ip.src, ip.dst, ip.hopLimit);
    if (r) this.drop(r === 'icmp_not_relayed' ? 'icmp6_not_relayed' : r);
  }

  /**
   * The guest's address in fec0::/64 for an IPv6 forward: the one it sends from, else the one
   * SLAAC makes from its MAC (EUI-64, Linux's default), e.g. before it sent anything over it.
   */
  private guestIp6(): Ip6 | undefined {
    if (this.guestAddr6) return this.guestAddr6;
    const m = this.guestMac;
    if (!m) return undefined;
    const a = PREFIX6.slice();
    a.set([m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]], 8);
    return a;
  }

  /** Only fec0::2 leads anywhere over IPv6: the host's ::1, as slirp does. */
  private tcpTarget6(dst: Ip6, dport: number): TcpTarget | undefined {
    if (this.config.restrict || !sameIp6(GATEWAY6, dst)) return undefined;
    return { host: HOST_LOOPBACK6, port: dport };
  }

  private udpInput(d: Uint8Array, ip: Ipv4, verify: boolean): void {
    const u = parseUdp(d, ip, verify);
    if (typeof u === 'string') return this.drop(u);
    if (u.dport === DHCP_SERVER_PORT && (ip.dst === BROADCAST || ip.dst === GATEWAY)) {
      return this.dhcp(u);
    }
    if (ip.dst === DNS && u.dport === DNS_PORT) return this.dns(ip.src, DNS, u);
    // TFTP answers under restrict=on too, as slirp's does (it is a built-in service).
    if (ip.dst === GATEWAY && this.tftp?.input(GATEWAY, ip.src, u.sport, u.dport, u.payload)) {
      return;
    }
    if (ip.dst === GATEWAY && this.udpForwards.fromGuest(ip.src, u.sport, u.dport, u.payload)) {
      return;
    }
    if (this.config.restrict) return this.drop('restricted');
    const host = hostFor(ip.dst);
    if (host === undefined) return this.drop('udp_no_route');
    this.udp.send(ip.src, u.sport, ip.dst, u.dport, { host, port: u.dport }, u.payload);
  }

  private dhcp(u: Udp): void {
    const a = dhcpAnswer(u.payload, this.config.bootfile);
    if (typeof a === 'string') return this.drop(a);
    this.counters.count(`dhcp_${a.kind}`);
    const f = udpFrame(
      a.chaddr,
      GATEWAY_MAC,
      GATEWAY,
      DHCP_SERVER_PORT,
      BROADCAST,
      DHCP_CLIENT_PORT,
      a.reply,
    );
    this.toGuest({ data: f });
  }

  /** A query from the guest's `src` to our DNS address `dns` (10.0.2.3 or fec0::3). */
  private dns(src: IpAddr, dns: IpAddr, u: Udp): void {
    const rcode = this.config.restrict ? RCODE_REFUSED : this.resolver ? 0 : RCODE_SERVFAIL;
    if (rcode === 0) {
      this.counters.count('dns_forwarded');
      return this.udp.send(src, u.sport, dns, DNS_PORT, this.resolver!, u.payload);
    }
    const r = dnsErrorReply(u.payload, rcode);
    if (!r) return this.drop('dns_malformed');
    this.counters.count(rcode === RCODE_REFUSED ? 'dns_refused' : 'dns_servfail');
    this.toGuest({
      data: udpFrame(this.guestMac!, GATEWAY_MAC, dns, DNS_PORT, src, u.sport, r),
    });
  }

  private tcpTarget(dst: Ip4, dport: number): TcpTarget | undefined {
    if (this.config.restrict) return undefined;
    if (dst === DNS) return dport === DNS_PORT && this.resolver ? this.resolver : undefined;
    const host = hostFor(dst);
    return host === undefined ? undefined : { host, port: dport };
  }
}

/**
 * Bytes of transport header a first fragment must carry (all of TCP's, options included, when
 * its data offset is in the fragment; 8 for UDP, ICMP, ICMPv6 and anything else).
 */
function minTransportHeader(proto: number, d: Uint8Array, l4: number, end: number): number {
  if (proto !== PROTO_TCP) return 8;
  return end - l4 > 12 ? Math.max(20, (d[l4 + 12] >> 4) * 4) : 20;
}

/**
 * Whether an IPv6 destination beyond our network may be relayed: not in fec0::/64 (only the
 * guest lives there), not unspecified, loopback, IPv4-mapped, link-local or multicast.
 */
function routable6(a: Ip6): boolean {
  if (inPrefix6(a) || a[0] === 0xff || (a[0] === 0xfe && (a[1] & 0xc0) === 0x80)) return false;
  // ::/96 holds ::, ::1 and the deprecated IPv4-compatible addresses; ::ffff:0:0/96 is mapped IPv4.
  const zero10 = a.subarray(0, 10).every((b) => b === 0);
  return !(zero10 && ((a[10] === 0 && a[11] === 0) || (a[10] === 0xff && a[11] === 0xff)));
}

/** Whether `a` is in fec0::/64. */
const inPrefix6 = (a: Ip6): boolean => a.subarray(0, 8).every((b, i) => b === PREFIX6[i]);

/** The host address a guest destination maps to; undefined when there is none to reach. */
function hostFor(dst: Ip4): string | undefined {
  if (dst === GATEWAY) return formatIp4(LOOPBACK);
  if ((dst & NETMASK) >>> 0 === NETWORK) return undefined; // only the guest lives there
  const first = dst >>> 24;
  if (first === 0 || first === 127 || first >= 224) return undefined;
  return formatIp4(dst);
}
