/**
 * TCP headers for the user network: parsing what the guest sends (data offset, options on SYN:
 * MSS and window scale, checksum unless offloaded) and building what we send. Our segments
 * leave with a partial checksum (the pseudo-header sum in the field, `csum` metadata on the
 * packet), as a host stack hands them to a NIC: the NIC model or the guest's stack finishes it,
 * so the payload is not summed here. A segment larger than the guest's MSS leaves as a TSO
 * frame (`gso` metadata), as a guest's own TSO frames do: a virtio-net whose driver took
 * GUEST_TSO4 (GUEST_TSO6 for IPv6) passes it up whole, any other receiver cuts it
 * (devices/net/offload.ts). Both address families: the IP header follows the addresses.
 */
import { get16, put16 } from '../offload.js';
import { GSO_TCPV4, GSO_TCPV6, type NetPacket } from '../packet.js';
import type { Ip4 } from './config.js';
import {
  L4_OFF6,
  ipv6Frame,
  l4ChecksumOk6,
  seedL4Checksum6,
  type Ip6,
  type IpAddr,
  type Ipv6,
} from './ipv6.js';
import {
  L4_OFF,
  PROTO_TCP,
  get32,
  ipv4Frame,
  l4ChecksumOk,
  put32,
  seedL4Checksum,
  type Ipv4,
} from './ipv4.js';

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

/** A TCP header's fields: the window as sent (unscaled), MSS and window scale of a SYN. */
interface TcpFields {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  win: number;
  mss?: number;
  wscale?: number;
}

export interface TcpSegment extends TcpFields {
  /** The segment's data: a view into the frame. */
  payload: Uint8Array;
}

/** Parses a TCP header; a string is the reason to drop the segment (a counter name). */
export function parseTcp(d: Uint8Array, ip: Ipv4 | Ipv6, verify: boolean): TcpSegment | string {
  const t = ip.l4;
  if (ip.end - t < 20) return 'tcp_runt';
  const doff = (d[t + 12] >> 4) * 4;
  if (doff < 20 || doff > ip.end - t) return 'tcp_header_length';
  if (verify && !(isV4(ip) ? l4ChecksumOk(d, ip) : l4ChecksumOk6(d, ip))) return 'tcp_checksum';
  const s: TcpSegment = {
    sport: get16(d, t),
    dport: get16(d, t + 2),
    seq: get32(d, t + 4),
    ack: get32(d, t + 8),
    flags: d[t + 13],
    win: get16(d, t + 14),
    payload: d.subarray(t + doff, ip.end),
  };
  if (s.flags & SYN) readOptions(d, t + 20, t + doff, s);
  return s;
}

/** MSS and window scale from a SYN's options; a malformed option ends the list. */
function readOptions(d: Uint8Array, i: number, end: number, s: TcpSegment): void {
  while (i < end) {
    const kind = d[i];
    if (kind === 0) return;
    if (kind === 1) {
      i++;
      continue;
    }
    if (i + 1 >= end) return;
    const len = d[i + 1];
    if (len < 2 || i + len > end) return;
    if (kind === 2 && len === 4) s.mss = get16(d, i + 2);
    else if (kind === 3 && len === 3) s.wscale = Math.min(d[i + 2], 14);
    i += len;
  }
}

export type { IpAddr };

const isV4 = (ip: Ipv4 | Ipv6): ip is Ipv4 => typeof ip.src === 'number';

/** The header of a segment we send, with the addresses for the IP header (both one family). */
export interface SegmentOut extends TcpFields {
  src: IpAddr;
  dst: IpAddr;
}

/**
 * Where a segment we build puts its payload in the frame (it ends the frame): after the IP
 * header of its family and our TCP header, which carries options only on SYNs (MSS, window
 * scale). tcp-conn.ts aligns its cuts to this.
 */
export const tcpPayloadAt = (v4: boolean, hasMss = false, hasWscale = false): number =>
  (v4 ? L4_OFF : L4_OFF6) + 20 + (hasMss ? 4 : 0) + (hasWscale ? 4 : 0);

/** Most payload one segment (a TSO frame) carries: an IPv4 packet is at most 65535 bytes. */
export const MAX_TSO_PAYLOAD = 65_535 - 20 - 20;

/**
 * A segment with room for `payloadLen` bytes (the caller copies them in at tcpPayloadAt, the frame's end), as a
 * packet with partial-checksum metadata; with `gsoSize` below payloadLen, a TSO frame to be cut
 * into gsoSize-byte segments. The checksum seed covers the whole TCP length, as Linux seeds a
 * TSO frame (segmentation adjusts it per segment).
 */
export function tcpPacket(
  dstMac: Uint8Array,
  srcMac: Uint8Array,
  h: SegmentOut,
  payloadLen: number,
  gsoSize = 0,
): NetPacket {
  const v4 = typeof h.src === 'number';
  const t = v4 ? L4_OFF : L4_OFF6;
  const hdr = tcpPayloadAt(v4, h.mss !== undefined, h.wscale !== undefined) - t;
  const f = v4
    ? ipv4Frame(dstMac, srcMac, h.src as Ip4, h.dst as Ip4, PROTO_TCP, hdr + payloadLen)
    : ipv6Frame(dstMac, srcMac, h.src as Ip6, h.dst as Ip6, PROTO_TCP, hdr + payloadLen);
  put16(f, t, h.sport);
  put16(f, t + 2, h.dport);
  put32(f, t + 4, h.seq);
  put32(f, t + 8, h.ack);
  f[t + 12] = (hdr / 4) << 4;
  f[t + 13] = h.flags;
  put16(f, t + 14, h.win);
  let o = t + 20;
  if (h.mss !== undefined) {
    f[o] = 2;
    f[o + 1] = 4;
    put16(f, o + 2, h.mss);
    o += 4;
  }
  if (h.wscale !== undefined) {
    f.set([1, 3, 3, h.wscale], o);
  }
  if (v4) seedL4Checksum(f, 16, h.src as Ip4, h.dst as Ip4, PROTO_TCP);
  else seedL4Checksum6(f, 16, h.src as Ip6, h.dst as Ip6, PROTO_TCP);
  const csum = { start: t, offset: 16 };
  if (gsoSize > 0 && payloadLen > gsoSize) {
    const type = v4 ? GSO_TCPV4 : GSO_TCPV6;
    return { data: f, csum, gso: { type, size: gsoSize, hdrLen: t + hdr } };
  }
  return { data: f, csum };
}
