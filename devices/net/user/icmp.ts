/**
 * ICMP for the user network: echo requests to the gateway or DNS address are answered here
 * (what `ping 10.0.2.2` shows, even with restrict=on). Echo requests to other addresses go out
 * through the host's ICMP socket (icmp-relay.ts); other ICMP from the guest is dropped.
 */
import { internetChecksum, put16 } from '../offload.js';
import { PROTO_ICMP, L4_OFF, ipv4Frame, type Ipv4 } from './ipv4.js';

const ECHO_REPLY = 0;
export const ECHO_REQUEST = 8;

/** Checks an ICMP message's length and checksum; a string is the reason to drop it. */
export function checkIcmp(d: Uint8Array, ip: Ipv4): true | string {
  if (ip.end - ip.l4 < 8) return 'icmp_runt';
  if (internetChecksum(d, ip.l4, ip.end) !== 0) return 'icmp_checksum';
  return true;
}

/** The echo reply to an ICMP packet, or the reason it gets none (a counter name). */
export function icmpReply(
  d: Uint8Array,
  ip: Ipv4,
  ourMac: Uint8Array,
  guestMac: Uint8Array,
): Uint8Array | string {
  const c = checkIcmp(d, ip);
  if (c !== true) return c;
  if (d[ip.l4] !== ECHO_REQUEST) return 'icmp_unhandled';
  const f = ipv4Frame(guestMac, ourMac, ip.dst, ip.src, PROTO_ICMP, ip.end - ip.l4);
  f.set(d.subarray(ip.l4, ip.end), L4_OFF);
  f[L4_OFF] = ECHO_REPLY;
  f[L4_OFF + 1] = 0;
  put16(f, L4_OFF + 2, 0);
  put16(f, L4_OFF + 2, internetChecksum(f, L4_OFF, f.length));
  return f;
}
