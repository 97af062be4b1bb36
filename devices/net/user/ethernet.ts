/** Ethernet framing for the user network: header parse/build and the addresses it answers. */
import { get16, put16 } from '../offload.js';
import { ETH_HLEN } from '../packet.js';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export const etherType = (d: Uint8Array): number => get16(d, 12);

/** Whether d[o, o+6) is `mac`. */
export function sameMac(mac: Uint8Array, d: Uint8Array, o: number): boolean {
  for (let i = 0; i < 6; i++) if (d[o + i] !== mac[i]) return false;
  return true;
}

/** Whether the frame is for `mac` (unicast) or for everyone (broadcast/multicast). */
export const isForUs = (d: Uint8Array, mac: Uint8Array): boolean =>
  (d[0] & 1) === 1 || sameMac(mac, d, 0);

/** A new frame of `len` bytes (header included) with its Ethernet header written. */
export function ethFrame(len: number, dst: Uint8Array, src: Uint8Array, type: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  put16(f, 12, type);
  return f;
}

export { ETH_HLEN };
