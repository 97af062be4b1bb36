/**
 * ARP for the user network: the gateway (10.0.2.2) and DNS (10.0.2.3) addresses answer with the
 * gateway MAC; the guest's own requests and announcements tell us its MAC, and when it has sent
 * nothing yet (a port forward's first connection), we ask for it. IPv4 over Ethernet
 * only; anything else is dropped.
 */
import { get16, put16 } from '../offload.js';
import type { Ip4 } from './config.js';
import { BROADCAST_MAC, ETH_HLEN, ETHERTYPE_ARP, ethFrame } from './ethernet.js';
import { get32, put32 } from './ipv4.js';

const ARP_LEN = 28;
const OP_REQUEST = 1;
const OP_REPLY = 2;

export interface ArpResult {
  /** The sender's MAC and IP (learnt whatever the request asked). */
  senderMac: Uint8Array;
  senderIp: Ip4;
  /** A reply to send, if the request asked for one of our addresses. */
  reply?: Uint8Array;
}

/** Parses an ARP frame; undefined when it is not IPv4-over-Ethernet ARP. */
export function handleArp(
  d: Uint8Array,
  ourMac: Uint8Array,
  answers: (ip: Ip4) => boolean,
): ArpResult | undefined {
  const a = ETH_HLEN;
  if (d.length < a + ARP_LEN) return undefined;
  if (get16(d, a) !== 1 || get16(d, a + 2) !== 0x0800 || d[a + 4] !== 6 || d[a + 5] !== 4) {
    return undefined;
  }
  const op = get16(d, a + 6);
  const senderMac = d.slice(a + 8, a + 14);
  const senderIp = get32(d, a + 14);
  const targetIp = get32(d, a + 24);
  if (op !== OP_REQUEST || !answers(targetIp)) {
    return op === OP_REQUEST || op === OP_REPLY ? { senderMac, senderIp } : undefined;
  }
  const reply = arpFrame(OP_REPLY, ourMac, targetIp, senderMac, senderIp);
  return { senderMac, senderIp, reply };
}

/** A who-has for `targetIp` from (ourMac, ourIp), broadcast: how we learn the guest's MAC. */
export const arpRequest = (ourMac: Uint8Array, ourIp: Ip4, targetIp: Ip4): Uint8Array =>
  arpFrame(OP_REQUEST, ourMac, ourIp, BROADCAST_MAC, targetIp);

function arpFrame(op: number, sha: Uint8Array, spa: Ip4, tha: Uint8Array, tpa: Ip4): Uint8Array {
  const a = ETH_HLEN;
  const r = ethFrame(a + ARP_LEN, tha, sha, ETHERTYPE_ARP);
  put16(r, a, 1);
  put16(r, a + 2, 0x0800);
  r[a + 4] = 6;
  r[a + 5] = 4;
  put16(r, a + 6, op);
  r.set(sha, a + 8);
  put32(r, a + 14, spa);
  if (op === OP_REPLY) r.set(tha, a + 18);
  put32(r, a + 24, tpa);
  return r;
}
