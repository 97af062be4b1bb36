/** UDP headers for the user network: checks on what the guest sends, datagrams we send. */
import { get16, put16 } from '../offload.js';
import type { Ip4 } from './config.js';
import { L4_OFF, PROTO_UDP, ipv4Frame, l4ChecksumOk, setL4Checksum, type Ipv4 } from './ipv4.js';
import {
  L4_OFF6,
  ipv6Frame,
  l4ChecksumOk6,
  setL4Checksum6,
  type Ip6,
  type IpAddr,
  type Ipv6,
} from './ipv6.js';

export interface Udp {
  sport: number;
  dport: number;
  /** The datagram's data: a view into the frame. */
  payload: Uint8Array;
}

/** Largest datagram we send to the guest: one 64 KiB IP packet (fragment.ts cuts it). */
export const MAX_UDP_TO_GUEST = 65535 - 20 - 8;
/** The same over IPv6 (the payload length excludes the fixed header). */
export const MAX_UDP6_TO_GUEST = 65535 - 8;

/** Parses a UDP header; a string is the reason to drop the datagram. */
export function parseUdp(d: Uint8Array, ip: Ipv4 | Ipv6, verify: boolean): Udp | string {
  if (ip.end - ip.l4 < 8) return 'udp_runt';
  const len = get16(d, ip.l4 + 4);
  if (len < 8 || len > ip.end - ip.l4) return 'udp_length';
  const sum = get16(d, ip.l4 + 6);
  if (typeof ip.src === 'number') {
    if (verify && sum !== 0 && !l4ChecksumOk(d, { ...(ip as Ipv4), end: ip.l4 + len })) {
      return 'udp_checksum';
    }
  } else if (sum === 0 || (verify && !l4ChecksumOk6(d, { ...(ip as Ipv6), end: ip.l4 + len }))) {
    // RFC 8200 8.1: a zero UDP checksum is not allowed over IPv6.
    return 'udp_checksum';
  }
  return {
    sport: get16(d, ip.l4),
    dport: get16(d, ip.l4 + 2),
    payload: d.subarray(ip.l4 + 8, ip.l4 + len),
  };
}

/** A UDP datagram in a complete frame, checksum computed. */
export function udpFrame(
  dstMac: Uint8Array,
  srcMac: Uint8Array,
  src: IpAddr,
  sport: number,
  dst: IpAddr,
  dport: number,
  payload: Uint8Array,
): Uint8Array {
  const v4 = typeof src === 'number';
  const f = v4
    ? ipv4Frame(dstMac, srcMac, src, dst as Ip4, PROTO_UDP, 8 + payload.length)
    : ipv6Frame(dstMac, srcMac, src, dst as Ip6, PROTO_UDP, 8 + payload.length);
  const o = v4 ? L4_OFF : L4_OFF6;
  put16(f, o, sport);
  put16(f, o + 2, dport);
  put16(f, o + 4, 8 + payload.length);
  f.set(payload, o + 8);
  if (v4) setL4Checksum(f, 6, src, dst as Ip4, PROTO_UDP);
  else setL4Checksum6(f, 6, src, dst as Ip6, PROTO_UDP);
  return f;
}
