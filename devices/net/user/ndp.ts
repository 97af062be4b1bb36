/**
 * Neighbour discovery (RFC 4861) for the user network's IPv6: neighbour solicitations for the
 * gateway's addresses (fec0::2, fec0::3, fe80::2) get an advertisement with the gateway MAC, and
 * a router solicitation gets a router advertisement of fec0::/64 (autonomous: the guest builds
 * its address by SLAAC), an MTU of 1500 and fec0::3 as DNS server (RFC 8106 RDNSS), from
 * fe80::2 — which the guest takes as its default router. Messages are checked as the RFC says a host
 * must (hop limit 255, code 0, lengths, well-formed options) and dropped, counted, otherwise.
 * What the guest advertises itself (its NAs, DAD probes for its own addresses) needs no answer.
 */
import { put16 } from '../offload.js';
import { put32 } from './ipv4.js';
import { setIcmpv6Checksum } from './icmpv6.js';
import {
  ALL_NODES,
  DNS6,
  GATEWAY6_LL,
  L4_OFF6,
  PREFIX6,
  PREFIX6_LEN,
  PROTO_ICMPV6,
  ipv6Frame,
  isOurIp6,
  sameIp6,
  type Ip6,
  type Ipv6,
} from './ipv6.js';

export const ND_ROUTER_SOLICIT = 133;
export const ND_ROUTER_ADVERT = 134;
export const ND_NEIGHBOR_SOLICIT = 135;
export const ND_NEIGHBOR_ADVERT = 136;
export const ND_REDIRECT = 137;

const OPT_SOURCE_LLADDR = 1;
const OPT_TARGET_LLADDR = 2;
const OPT_PREFIX_INFO = 3;
const OPT_MTU = 5;
const OPT_RDNSS = 25;

/** What we advertise (slirp's values where it has them). */
export const RA_ROUTER_LIFETIME_S = 1800;
export const RA_VALID_LIFETIME_S = 86_400;
export const RA_PREFERRED_LIFETIME_S = 14_400;
export const RA_MTU = 1500;

const NA_ROUTER = 0x80;
const NA_SOLICITED = 0x40;
const NA_OVERRIDE = 0x20;

/** An NDP message's verdict: a frame to send the guest, nothing to send, or a drop reason. */
export type NdpResult = { reply?: Uint8Array } | string;

export const isNdp = (type: number): boolean => type >= ND_ROUTER_SOLICIT && type <= ND_REDIRECT;

const unspecified = (a: Ip6): boolean => a.every((b) => b === 0);

/** Whether `dst` is ff02::1:ffXX:XXXX for `target` (its solicited-node multicast group). */
function isSolicitedNode(dst: Ip6, target: Uint8Array, o: number): boolean {
  const prefix = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff];
  for (let i = 0; i < 13; i++) if (dst[i] !== prefix[i]) return false;
  return dst[13] === target[o + 13] && dst[14] === target[o + 14] && dst[15] === target[o + 15];
}

/** Options run from `o` to `end` in 8-byte units; false if one has length 0 or overruns. */
function optionsOk(d: Uint8Array, o: number, end: number): boolean {
  while (o < end) {
    if (o + 2 > end) return false;
    const len = d[o + 1] * 8;
    if (len === 0 || o + len > end) return false;
    o += len;
  }
  return true;
}

function hasOption(d: Uint8Array, o: number, end: number, type: number): boolean {
  for (; o < end; o += d[o + 1] * 8) if (d[o] === type) return true;
  return false;
}

/**
 * Handles an NDP message (type 133..137) whose ICMPv6 checksum was checked. `guestMac` is the
 * frame's source, where any answer goes.
 */
export function handleNdp(
  d: Uint8Array,
  ip: Ipv6,
  ourMac: Uint8Array,
  guestMac: Uint8Array,
): NdpResult {
  const t = ip.l4;
  const type = d[t];
  // RFC 4861 7.1.1 / 6.1.1: anything forwarded by a router (hop limit < 255) is not NDP.
  if (ip.hopLimit !== 255) return 'ndp_hop_limit';
  if (d[t + 1] !== 0) return 'ndp_code';
  if (type === ND_ROUTER_SOLICIT) {
    if (ip.end - t < 8 || !optionsOk(d, t + 8, ip.end)) return 'ndp_malformed';
    if (unspecified(ip.src) && hasOption(d, t + 8, ip.end, OPT_SOURCE_LLADDR))
      return 'ndp_malformed';
    return { reply: routerAdvert(ourMac, guestMac, unspecified(ip.src) ? ALL_NODES : ip.src) };
  }
  if (type === ND_NEIGHBOR_SOLICIT) {
    if (ip.end - t < 24 || !optionsOk(d, t + 24, ip.end)) return 'ndp_malformed';
    const target = t + 8;
    if (d[target] === 0xff) return 'ndp_malformed'; // a multicast target
    if (!sameIp6(ip.dst, d, target) && !isSolicitedNode(ip.dst, d, target))
      return 'ndp_bad_destination';
    const dad = unspecified(ip.src);
    if (dad && hasOption(d, t + 24, ip.end, OPT_SOURCE_LLADDR)) return 'ndp_malformed';
    if (!isOurIp6(d, target)) return {}; // the guest resolving someone else, or its own DAD
    const targetIp = d.slice(target, target + 16);
    return { reply: neighborAdvert(ourMac, guestMac, targetIp, dad ? ALL_NODES : ip.src, !dad) };
  }
  // Advertisements, redirects, the guest's own DAD answers: nothing for a gateway to do.
  if (ip.end - t < 8) return 'ndp_malformed';
  return {};
}

/** Our router advertisement, to `dst` (the soliciting guest, or all nodes). */
export function routerAdvert(ourMac: Uint8Array, guestMac: Uint8Array, dst: Ip6): Uint8Array {
  const len = 16 + 8 + 8 + 32 + 24;
  const f = ipv6Frame(guestMac, ourMac, GATEWAY6_LL, dst, PROTO_ICMPV6, len, 255);
  const t = L4_OFF6;
  f[t] = ND_ROUTER_ADVERT;
  f[t + 4] = 64; // the hop limit we suggest
  put16(f, t + 6, RA_ROUTER_LIFETIME_S);
  let o = t + 16;
  f.set([OPT_SOURCE_LLADDR, 1, ...ourMac], o);
  o += 8;
  f.set([OPT_MTU, 1], o);
  put32(f, o + 4, RA_MTU);
  o += 8;
  f.set([OPT_PREFIX_INFO, 4, PREFIX6_LEN, 0xc0], o); // on-link, autonomous
  put32(f, o + 4, RA_VALID_LIFETIME_S);
  put32(f, o + 8, RA_PREFERRED_LIFETIME_S);
  f.set(PREFIX6, o + 16);
  o += 32;
  f.set([OPT_RDNSS, 3], o);
  put32(f, o + 4, RA_ROUTER_LIFETIME_S);
  f.set(DNS6, o + 8);
  setIcmpv6Checksum(f, GATEWAY6_LL, dst);
  return f;
}

/** A neighbour advertisement for one of our addresses, with the gateway MAC. */
function neighborAdvert(
  ourMac: Uint8Array,
  guestMac: Uint8Array,
  target: Ip6,
  dst: Ip6,
  solicited: boolean,
): Uint8Array {
  const f = ipv6Frame(guestMac, ourMac, target, dst, PROTO_ICMPV6, 32, 255);
  const t = L4_OFF6;
  f[t] = ND_NEIGHBOR_ADVERT;
  f[t + 4] = NA_ROUTER | NA_OVERRIDE | (solicited ? NA_SOLICITED : 0);
  f.set(target, t + 8);
  f.set([OPT_TARGET_LLADDR, 1, ...ourMac], t + 24);
  setIcmpv6Checksum(f, target, dst);
  return f;
}
