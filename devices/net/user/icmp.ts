/**
 * ICMP for the user network: echo requests to the gateway or DNS address are answered (what
 * `ping 10.0.2.2` shows, even with restrict=on). Echo to anywhere else is not relayed (that
 * would need raw or ICMP sockets on the host) and is counted as dropped.
 */
import { internetChecksum, put16 } from '../offload.js';
import { PROTO_ICMP, L4_OFF, ipv4Frame, type Ipv4 } from './ipv4.js';

const ECHO_REPLY = 0;
const ECHO_REQUEST = 8;

/** The echo reply to an ICMP packet, or the reason it gets none (a counter name). */
export function icmpReply(
  d: Uint8Array,
  ip: Ipv4,
  ourMac: Uint8Array,
  guestMac: Uint8Array,
): Uint8Array | string {
  if (ip.end - ip.l4 < 8) return 'icmp_runt';
  if (internetChecksum(d, ip.l4, ip.end) !== 0) return 'icmp_checksum';
  if (d[ip.l4] !== ECHO_REQUEST) return 'icmp_unhandled';
  const f = ipv4Frame(guestMac, ourMac, ip.dst, ip.src, PROTO_ICMP, ip.end - ip.l4);
  f.set(d.subarray(ip.l4, ip.end), L4_OFF);
  f[L4_OFF] = ECHO_REPLY;
  f[L4_OFF + 1] = 0;
  put16(f, L4_OFF + 2, 0);
  put16(f, L4_OFF + 2, internetChecksum(f, L4_OFF, f.length));
  return f;
}
