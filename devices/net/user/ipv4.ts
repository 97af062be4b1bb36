/**
 * IPv4 for the user network: header checks on what the guest sends (version, header and total
 * lengths, checksum unless the NIC vouched for it), and headers for what we send. A fragment is
 * parsed like any packet and marked (`frag`): reassembly.ts puts the datagram together before
 * any transport sees it.
 */
import { get16, internetChecksum, put16 } from '../offload.js';
import type { Ip4 } from './config.js';
import { ETH_HLEN, ETHERTYPE_IPV4, ethFrame } from './ethernet.js';

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
/** Where the transport header starts in the frames we build (no IP options). */
export const L4_OFF = ETH_HLEN + 20;

/** Big-endian 32-bit read and write (addresses, sequence numbers). */
export const get32 = (d: Uint8Array, o: number): number =>
  ((d[o] << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3]) >>> 0;

export function put32(d: Uint8Array, o: number, v: number): void {
  d[o] = v >>> 24;
  d[o + 1] = (v >>> 16) & 0xff;
  d[o + 2] = (v >>> 8) & 0xff;
  d[o + 3] = v & 0xff;
}

/** A parsed IPv4 packet inside its frame: the transport data is d[l4, end). */
export interface Ipv4 {
  src: Ip4;
  dst: Ip4;
  proto: number;
  ipOff: number;
  l4: number;
  end: number;
  /** Set on a fragment: its payload's byte offset, more fragments follow, the IP identification. */
  frag?: { offset: number; more: boolean; id: number };
}

export interface Ipv4Checks {
  /** Verify the header checksum (false when the NIC computed or checked it). */
  verify: boolean;
  /** A large segment from a NIC's TSO/GSO: the total length may be 0 or stale. */
  gso: boolean;
}

/** Parses the IPv4 header at `ipOff`; a string is the reason to drop it (a counter name). */
export function parseIpv4(d: Uint8Array, ipOff: number, c: Ipv4Checks): Ipv4 | string {
  if (d.length < ipOff + 20) return 'ip_runt';
  if (d[ipOff] >> 4 !== 4) return 'ip_version';
  const ihl = (d[ipOff] & 0xf) * 4;
  if (ihl < 20 || ipOff + ihl > d.length) return 'ip_header_length';
  let end = ipOff + get16(d, ipOff + 2);
  if (c.gso && (end === ipOff || end > d.length)) end = d.length;
  if (end < ipOff + ihl || end > d.length) return 'ip_total_length';
  if (c.verify && internetChecksum(d, ipOff, ipOff + ihl) !== 0) return 'ip_checksum';
  const ff = get16(d, ipOff + 6);
  const ip: Ipv4 = {
    src: get32(d, ipOff + 12),
    dst: get32(d, ipOff + 16),
    proto: d[ipOff + 9],
    ipOff,
    l4: ipOff + ihl,
    end,
  };
  if (ff & 0x3fff) {
    // A TSO segment is never a fragment: the NIC would cut it into fragments of one datagram.
    if (c.gso) return 'ip_fragment_offloaded';
    ip.frag = { offset: (ff & 0x1fff) * 8, more: (ff & 0x2000) !== 0, id: get16(d, ipOff + 4) };
  }
  return ip;
}

/** The one's-complement sum of the TCP/UDP pseudo-header (not folded). */
export function pseudoSum(src: Ip4, dst: Ip4, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

/** Verifies a TCP/UDP checksum over d[l4, end) (the guest did not offload it). */
export function l4ChecksumOk(d: Uint8Array, ip: Ipv4): boolean {
  const seed = pseudoSum(ip.src, ip.dst, ip.proto, ip.end - ip.l4);
  return internetChecksum(d, ip.l4, ip.end, seed) === 0;
}

let nextId = 1;

/**
 * A frame with Ethernet and IPv4 headers written (checksum included) and `l4Len` zero bytes of
 * transport data at L4_OFF for the caller to fill.
 */
export function ipv4Frame(
  dstMac: Uint8Array,
  srcMac: Uint8Array,
  src: Ip4,
  dst: Ip4,
  proto: number,
  l4Len: number,
): Uint8Array {
  const f = ethFrame(L4_OFF + l4Len, dstMac, srcMac, ETHERTYPE_IPV4);
  const o = ETH_HLEN;
  f[o] = 0x45;
  put16(f, o + 2, 20 + l4Len);
  put16(f, o + 4, nextId);
  nextId = (nextId + 1) & 0xffff;
  f[o + 8] = 64;
  f[o + 9] = proto;
  put32(f, o + 12, src);
  put32(f, o + 16, dst);
  put16(f, o + 10, internetChecksum(f, o, o + 20));
  return f;
}

/** Fills in the full TCP/UDP checksum of a frame built by ipv4Frame (field at L4_OFF + at). */
export function setL4Checksum(f: Uint8Array, at: number, src: Ip4, dst: Ip4, proto: number): void {
  const len = f.length - L4_OFF;
  put16(f, L4_OFF + at, 0);
  let c = internetChecksum(f, L4_OFF, f.length, pseudoSum(src, dst, proto, len));
  if (c === 0 && proto === PROTO_UDP) c = 0xffff;
  put16(f, L4_OFF + at, c);
}

/**
 * Writes only the pseudo-header sum into the checksum field, for a packet sent with partial
 * checksum metadata (the NIC, or the guest's stack, finishes it: no pass over the payload here).
 */
export function seedL4Checksum(f: Uint8Array, at: number, src: Ip4, dst: Ip4, proto: number): void {
  let s = pseudoSum(src, dst, proto, f.length - L4_OFF);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  put16(f, L4_OFF + at, s);
}
