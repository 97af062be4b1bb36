/**
 * ICMPv6 for the user network: the checksum check every ICMPv6 message gets, and echo replies
 * from the gateway's addresses (fec0::2, fec0::3, fe80::2: what `ping6 fec0::2` shows). Echo to
 * an address beyond the network goes out through the host's ICMPv6 socket (icmp-relay.ts), as
 * for IPv4. Neighbour discovery is in ndp.ts.
 */
import {
  L4_OFF6,
  PROTO_ICMPV6,
  ipv6Frame,
  l4ChecksumOk6,
  setL4Checksum6,
  type Ip6,
  type Ipv6,
} from './ipv6.js';

export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

/**
 * Checks an ICMPv6 message's length and checksum (the pseudo-header included); a string is
 * the reason to drop it (a counter name).
 */
export function checkIcmpv6(d: Uint8Array, ip: Ipv6): true | string {
  if (ip.end - ip.l4 < 4) return 'icmp6_runt';
  if (!l4ChecksumOk6(d, ip)) return 'icmp6_checksum';
  return true;
}

/** The ICMPv6 checksum of a frame built by ipv6Frame, written into it. */
export const setIcmpv6Checksum = (f: Uint8Array, src: Ip6, dst: Ip6): void =>
  setL4Checksum6(f, 2, src, dst, PROTO_ICMPV6);

/** The echo reply to a checked echo request (from the address it was sent to). */
export function icmpv6EchoReply(
  d: Uint8Array,
  ip: Ipv6,
  ourMac: Uint8Array,
  guestMac: Uint8Array,
): Uint8Array | string {
  if (d[ip.l4] !== ICMPV6_ECHO_REQUEST) return 'icmp6_unhandled';
  if (ip.end - ip.l4 < 8) return 'icmp6_runt';
  const f = ipv6Frame(guestMac, ourMac, ip.dst, ip.src, PROTO_ICMPV6, ip.end - ip.l4);
  f.set(d.subarray(ip.l4, ip.end), L4_OFF6);
  f[L4_OFF6] = ICMPV6_ECHO_REPLY;
  f[L4_OFF6 + 1] = 0;
  setIcmpv6Checksum(f, ip.dst, ip.src);
  return f;
}
