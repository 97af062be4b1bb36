/**
 * IPv6 for the user network, as QEMU's slirp lays it out: prefix fec0::/64, the host at
 * fec0::2 (and the router's link-local fe80::2), DNS at fec0::3; the guest autoconfigures from
 * our router advertisement (ndp.ts). Header checks on what the guest sends (version, payload
 * length, hop limit for NDP), and headers for what we send. Extension headers are refused
 * (counted and dropped) but for the fragment header (44, returned as `proto` for
 * reassembly.ts): the guest's TCP and ICMPv6 to us carry none, and what does (MLD reports with
 * hop-by-hop router alert) has nothing here to serve it.
 */
import { get16, internetChecksum, put16 } from '../offload.js';
import type { Ip4 } from './config.js';
import { ETH_HLEN, ethFrame } from './ethernet.js';

export const ETHERTYPE_IPV6 = 0x86dd;
export const PROTO_ICMPV6 = 58;
/** Where the transport header starts in the frames we build (no extension headers). */
export const L4_OFF6 = ETH_HLEN + 40;

/** An IPv6 address: 16 bytes, network order. */
export type Ip6 = Uint8Array;
/** An address of either family (a connection's or a flow's): IPv4 as a number. */
export type IpAddr = Ip4 | Ip6;

/** Parses the textual forms we use (full, or with one `::`); undefined if it is not one. */
export function parseIp6(s: string): Ip6 | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  const a = new Uint8Array(16);
  for (const [i, g] of all.entries()) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    put16(a, i * 2, parseInt(g, 16));
  }
  return a;
}

/** The full eight-group form (for keys and messages; not shortened). */
export const formatIp6 = (a: Ip6): string =>
  Array.from({ length: 8 }, (_, i) => get16(a, i * 2).toString(16)).join(':');

/** A map key for an address of either family. */
export const addrKey = (a: IpAddr): string =>
  typeof a === 'number' ? String(a) : `[${formatIp6(a)}]`;

export function sameIp6(a: Ip6, d: Uint8Array, o = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== d[o + i]) return false;
  return true;
}

/** The user network's IPv6 layout (QEMU's slirp defaults). */
export const PREFIX6 = parseIp6('fec0::')!;
export const PREFIX6_LEN = 64;
export const GATEWAY6 = parseIp6('fec0::2')!;
export const DNS6 = parseIp6('fec0::3')!;
/** The router's link-local address: the source of router advertisements, the default route. */
export const GATEWAY6_LL = parseIp6('fe80::2')!;
export const ALL_NODES = parseIp6('ff02::1')!;
/** Where fec0::2 leads on the host: its IPv6 loopback. */
export const HOST_LOOPBACK6 = '::1';

/** The addresses the gateway answers for (neighbour solicitations, echo). */
export const isOurIp6 = (a: Uint8Array, o = 0): boolean =>
  sameIp6(GATEWAY6, a, o) || sameIp6(DNS6, a, o) || sameIp6(GATEWAY6_LL, a, o);

/** A parsed IPv6 packet inside its frame: the transport data is d[l4, end). */
export interface Ipv6 {
  src: Ip6;
  dst: Ip6;
  /** The next header after the fixed header (no extension header but a fragment header, 44). */
  proto: number;
  hopLimit: number;
  ipOff: number;
  l4: number;
  end: number;
}

/**
 * Parses the IPv6 header at `ipOff`; a string is the reason to drop it (a counter name).
 * `gso`: a large segment from a NIC's TSO, whose payload length may be 0 (to the frame's end).
 */
export function parseIpv6(d: Uint8Array, ipOff: number, gso: boolean): Ipv6 | string {
  if (d.length < ipOff + 40) return 'ip6_runt';
  if (d[ipOff] >> 4 !== 6) return 'ip6_version';
  const plen = get16(d, ipOff + 4);
  let end = ipOff + 40 + plen;
  if (gso && plen === 0) end = d.length;
  if (end > d.length) return 'ip6_payload_length';
  const proto = d[ipOff + 6];
  if (isExtensionHeader(proto)) return 'ip6_extension_header';
  return {
    src: d.slice(ipOff + 8, ipOff + 24),
    dst: d.slice(ipOff + 24, ipOff + 40),
    proto,
    hopLimit: d[ipOff + 7],
    ipOff,
    l4: ipOff + 40,
    end,
  };
}

/** Extension headers we refuse: hop-by-hop, routing, destination options, AH, ESP. */
export const isExtensionHeader = (p: number): boolean =>
  p === 0 || p === 43 || p === 60 || p === 51 || p === 50;

/** The one's-complement sum of the IPv6 pseudo-header (RFC 8200 8.1), not folded. */
export function pseudoSum6(src: Ip6, dst: Ip6, proto: number, len: number): number {
  let s = proto + (len >>> 16) + (len & 0xffff);
  for (let i = 0; i < 16; i += 2) s += get16(src, i) + get16(dst, i);
  return s;
}

/** Verifies a TCP/UDP/ICMPv6 checksum over d[l4, end). */
export function l4ChecksumOk6(d: Uint8Array, ip: Ipv6): boolean {
  const seed = pseudoSum6(ip.src, ip.dst, ip.proto, ip.end - ip.l4);
  return internetChecksum(d, ip.l4, ip.end, seed) === 0;
}

/**
 * A frame with Ethernet and IPv6 headers written and `l4Len` zero bytes of transport data at
 * L4_OFF6 for the caller to fill.
 */
export function ipv6Frame(
  dstMac: Uint8Array,
  srcMac: Uint8Array,
  src: Ip6,
  dst: Ip6,
  proto: number,
  l4Len: number,
  hopLimit = 64,
): Uint8Array {
  const f = ethFrame(L4_OFF6 + l4Len, dstMac, srcMac, ETHERTYPE_IPV6);
  const o = ETH_HLEN;
  f[o] = 0x60;
  put16(f, o + 4, l4Len);
  f[o + 6] = proto;
  f[o + 7] = hopLimit;
  f.set(src, o + 8);
  f.set(dst, o + 24);
  return f;
}

/** Fills in the full transport checksum of a frame built by ipv6Frame (field at L4_OFF6 + at). */
export function setL4Checksum6(f: Uint8Array, at: number, src: Ip6, dst: Ip6, proto: number): void {
  put16(f, L4_OFF6 + at, 0);
  const c = internetChecksum(f, L4_OFF6, f.length, pseudoSum6(src, dst, proto, f.length - L4_OFF6));
  // 0 is "no checksum" for UDP, and invalid for IPv6 UDP: all ones is the same sum.
  put16(f, L4_OFF6 + at, c === 0 ? 0xffff : c);
}

/** Writes only the pseudo-header sum into the checksum field (partial checksum metadata). */
export function seedL4Checksum6(
  f: Uint8Array,
  at: number,
  src: Ip6,
  dst: Ip6,
  proto: number,
): void {
  let s = pseudoSum6(src, dst, proto, f.length - L4_OFF6);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  put16(f, L4_OFF6 + at, s);
}

/** The Ethernet multicast address of an IPv6 multicast address (33:33 + its last 32 bits). */
export const multicastMac = (a: Ip6): Uint8Array => Uint8Array.of(0x33, 0x33, ...a.subarray(12));
