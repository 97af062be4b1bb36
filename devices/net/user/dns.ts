/**
 * DNS for the user network: queries to 10.0.2.3:53 go to the host's resolver (the first IPv4
 * `nameserver` in /etc/resolv.conf, or one given in the options) through the UDP NAT, their
 * answers come back from 10.0.2.3. Without a resolver, or with restrict=on, the guest gets an
 * immediate SERVFAIL or REFUSED instead of a timeout.
 */
import { readFileSync } from 'node:fs';
import { get16, put16 } from '../offload.js';
import { parseIp4 } from './config.js';

export const DNS_PORT = 53;
export const RCODE_SERVFAIL = 2;
export const RCODE_REFUSED = 5;

export interface Resolver {
  host: string;
  port: number;
}

/** The first IPv4 nameserver of a resolv.conf text. */
export function resolverFrom(resolvConf: string): Resolver | undefined {
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && parseIp4(m[1]) !== undefined) return { host: m[1], port: DNS_PORT };
  }
  return undefined;
}

/** The host's resolver, read from /etc/resolv.conf (undefined when there is none). */
export function hostResolver(path = '/etc/resolv.conf'): Resolver | undefined {
  try {
    return resolverFrom(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * An error response to a query: same id and question, QR set, the given RCODE. Undefined for
 * something that is not a query (too short, or already a response).
 */
export function dnsErrorReply(q: Uint8Array, rcode: number): Uint8Array | undefined {
  if (q.length < 12 || q[2] & 0x80) return undefined;
  let end = 12;
  if (get16(q, 4) === 1) {
    // Skip the question's name (labels; no compression in a query) and its type and class.
    let i = 12;
    while (i < q.length && q[i] !== 0 && q[i] < 64) i += q[i] + 1;
    end = i < q.length && q[i] === 0 && i + 5 <= q.length ? i + 5 : 12;
  }
  const r = q.slice(0, end);
  r[2] = 0x80 | (q[2] & 0x79); // QR, opcode and RD kept, AA/TC clear
  r[3] = 0x80 | rcode; // RA
  put16(r, 4, end > 12 ? 1 : 0);
  put16(r, 6, 0);
  put16(r, 8, 0);
  put16(r, 10, 0);
  return r;
}
