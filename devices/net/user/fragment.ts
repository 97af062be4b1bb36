/**
 * Fragmentation of what the user network sends the guest when an IP packet is larger than the
 * guest's link (MTU 1500): an echo reply to `ping -s 4000`, a large UDP datagram from a host
 * socket. A host stack fragments its own packets the same way (IPv4: RFC 791; IPv6: the source
 * inserts a fragment header, RFC 8200 4.5). TCP never needs it: its large segments carry TSO
 * metadata and are cut into MSS-sized segments by the NIC instead.
 *
 * The packet's transport checksum is complete before it is cut (the guest reassembles, then
 * checks it over the whole datagram).
 */
import { get16, put16, internetChecksum } from '../offload.js';
import { ETH_HLEN, ETHERTYPE_IPV4 } from './ethernet.js';
import { ETHERTYPE_IPV6 } from './ipv6.js';

/** The guest's link MTU (what our router advertisement announces too). */
export const GUEST_MTU = 1500;
/** IPv6's fragment header (next header 44). */
export const PROTO_FRAGMENT6 = 44;
const FRAG6_HLEN = 8;

let nextId6 = 1;

/**
 * The frame as it leaves for the guest: itself when it fits in `mtu`, else its fragments.
 * Only frames built by ipv4Frame / ipv6Frame (no IP options, no extension headers) are cut;
 * anything else oversized is returned unchanged (the caller never makes such frames).
 */
export function fragmentForGuest(f: Uint8Array, mtu = GUEST_MTU): Uint8Array[] {
  if (f.length <= ETH_HLEN + mtu) return [f];
  const type = get16(f, 12);
  if (type === ETHERTYPE_IPV4 && f[ETH_HLEN] === 0x45) return fragment4(f, mtu);
  if (type === ETHERTYPE_IPV6) return fragment6(f, mtu);
  return [f];
}

function fragment4(f: Uint8Array, mtu: number): Uint8Array[] {
  const head = ETH_HLEN + 20;
  const step = (mtu - 20) & ~7;
  const out: Uint8Array[] = [];
  for (let off = 0; head + off < f.length; off += step) {
    const len = Math.min(step, f.length - head - off);
    const p = new Uint8Array(head + len);
    p.set(f.subarray(0, head), 0);
    p.set(f.subarray(head + off, head + off + len), head);
    const more = head + off + len < f.length;
    put16(p, ETH_HLEN + 2, 20 + len);
    put16(p, ETH_HLEN + 6, (more ? 0x2000 : 0) | (off >> 3));
    put16(p, ETH_HLEN + 10, 0);
    put16(p, ETH_HLEN + 10, internetChecksum(p, ETH_HLEN, head));
    out.push(p);
  }
  return out;
}

function fragment6(f: Uint8Array, mtu: number): Uint8Array[] {
  const head = ETH_HLEN + 40;
  const step = (mtu - 40 - FRAG6_HLEN) & ~7;
  const next = f[ETH_HLEN + 6];
  const id = nextId6;
  nextId6 = (nextId6 + 1) >>> 0 || 1;
  const out: Uint8Array[] = [];
  for (let off = 0; head + off < f.length; off += step) {
    const len = Math.min(step, f.length - head - off);
    const p = new Uint8Array(head + FRAG6_HLEN + len);
    p.set(f.subarray(0, head), 0);
    p[ETH_HLEN + 6] = PROTO_FRAGMENT6;
    put16(p, ETH_HLEN + 4, FRAG6_HLEN + len);
    const more = head + off + len < f.length;
    p[head] = next;
    put16(p, head + 2, off | (more ? 1 : 0));
    put16(p, head + 4, id >>> 16);
    put16(p, head + 6, id & 0xffff);
    p.set(f.subarray(head + off, head + off + len), head + FRAG6_HLEN);
    out.push(p);
  }
  return out;
}
