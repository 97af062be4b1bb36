/** UDP headers for the user network: checks on what the guest sends, datagrams we send. */
import { get16, put16 } from '../offload.js';
import type { Ip4 } from './config.js';
import { L4_OFF, PROTO_UDP, ipv4Frame, l4ChecksumOk, setL4Checksum, type Ipv4 } from './ipv4.js';

export interface Udp {
  sport: number;
  dport: number;
  /** The datagram's data: a view into the frame. */
  payload: Uint8Array;
}

/** Largest datagram we send to the guest: one 1500-byte IP packet (we never fragment). */
export const MAX_UDP_TO_GUEST = 1500 - 20 - 8;

/** Parses a UDP header; a string is the reason to drop the datagram. */
export function parseUdp(d: Uint8Array, ip: Ipv4, verify: boolean): Udp | string {
  if (ip.end - ip.l4 < 8) return 'udp_runt';
  const len = get16(d, ip.l4 + 4);
  if (len < 8 || len > ip.end - ip.l4) return 'udp_length';
  if (verify && get16(d, ip.l4 + 6) !== 0 && !l4ChecksumOk(d, { ...ip, end: ip.l4 + len })) {
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
  src: Ip4,
  sport: number,
  dst: Ip4,
  dport: number,
  payload: Uint8Array,
): Uint8Array {
  const f = ipv4Frame(dstMac, srcMac, src, dst, PROTO_UDP, 8 + payload.length);
  put16(f, L4_OFF, sport);
  put16(f, L4_OFF + 2, dport);
  put16(f, L4_OFF + 4, 8 + payload.length);
  f.set(payload, L4_OFF + 8);
  setL4Checksum(f, 6, src, dst, PROTO_UDP);
  return f;
}
