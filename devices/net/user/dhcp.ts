/**
 * The user network's DHCP server (RFC 2131, the subset slirp implements): DISCOVER gets an
 * OFFER of 10.0.2.15, REQUEST for that address an ACK (anything else a NAK), with the netmask,
 * router 10.0.2.2, DNS server 10.0.2.3 and a one-day lease. One guest per NIC, so one address.
 * With `bootfile=`, an OFFER and an ACK name the boot file in the BOOTP `file` field, as slirp
 * does (no option 67), beside siaddr (the next server) 10.0.2.2, where `tftp=` serves it.
 */
import { get16, put16 } from '../offload.js';
import { DNS, GATEWAY, GUEST, LEASE_SECONDS, NETMASK, type Ip4 } from './config.js';
import { get32, put32 } from './ipv4.js';

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

const BOOTP_LEN = 236;
const MAGIC = 0x63825363;
const OPT_PAD = 0;
const OPT_MASK = 1;
const OPT_ROUTER = 3;
const OPT_DNS = 6;
const OPT_REQUESTED_IP = 50;
const OPT_LEASE = 51;
const OPT_TYPE = 53;
const OPT_SERVER_ID = 54;
const OPT_END = 255;

const DISCOVER = 1;
const OFFER = 2;
const REQUEST = 3;
const ACK = 5;
const NAK = 6;

export interface DhcpAnswer {
  /** The BOOTP reply, to be sent from 10.0.2.2:67 to 255.255.255.255:68. */
  reply: Uint8Array;
  /** The client's hardware address (where to send the frame). */
  chaddr: Uint8Array;
  /** What was answered, for the counters: "offer", "ack" or "nak". */
  kind: string;
}

/** The options of a BOOTP message as code → value view; undefined when malformed. */
function parseOptions(m: Uint8Array): Map<number, Uint8Array> | undefined {
  const opts = new Map<number, Uint8Array>();
  let i = BOOTP_LEN + 4;
  while (i < m.length) {
    const code = m[i++];
    if (code === OPT_END) return opts;
    if (code === OPT_PAD) continue;
    if (i >= m.length) return undefined;
    const len = m[i++];
    if (i + len > m.length) return undefined;
    if (!opts.has(code)) opts.set(code, m.subarray(i, i + len));
    i += len;
  }
  return opts;
}

/**
 * Answers a client's DHCP message (`bootfile`: the name for the BOOTP file field, at most 127
 * bytes, as config.ts checks); a string is why it gets no answer (a counter name).
 */
export function dhcpAnswer(m: Uint8Array, bootfile?: string): DhcpAnswer | string {
  if (m.length < BOOTP_LEN + 4 || m[0] !== 1) return 'dhcp_malformed';
  if (m[1] !== 1 || m[2] !== 6) return 'dhcp_not_ethernet';
  if (get32(m, BOOTP_LEN) !== MAGIC) return 'dhcp_not_dhcp';
  const opts = parseOptions(m);
  const type = opts?.get(OPT_TYPE);
  if (!opts || type?.length !== 1) return 'dhcp_malformed';
  const server = opts.get(OPT_SERVER_ID);
  if (server && (server.length !== 4 || get32(server, 0) !== GATEWAY)) return 'dhcp_other_server';
  let answer: number;
  if (type[0] === DISCOVER) answer = OFFER;
  else if (type[0] === REQUEST) {
    const req = opts.get(OPT_REQUESTED_IP);
    const asked = req?.length === 4 ? get32(req, 0) : get32(m, 12);
    answer = asked === GUEST || asked === 0 ? ACK : NAK;
  } else return 'dhcp_ignored';
  return { reply: build(m, answer, bootfile), chaddr: m.slice(28, 34), kind: KIND[answer] };
}

const KIND: Record<number, string> = { [OFFER]: 'offer', [ACK]: 'ack', [NAK]: 'nak' };

/** BOOTP's `file` field: 128 bytes, the boot file name NUL-terminated. */
const FILE_OFF = 108;
const FILE_LEN = 128;

function build(req: Uint8Array, type: number, bootfile: string | undefined): Uint8Array {
  const r = new Uint8Array(300); // BOOTP's minimum message size, padded
  r[0] = 2;
  r[1] = 1;
  r[2] = 6;
  r.set(req.subarray(4, 8), 4); // xid
  put16(r, 10, get16(req, 10)); // flags (broadcast bit)
  r.set(req.subarray(28, 44), 28); // chaddr
  put32(r, BOOTP_LEN, MAGIC);
  let o = BOOTP_LEN + 4;
  const opt = (code: number, ...ips: Ip4[]): void => {
    r[o++] = code;
    r[o++] = ips.length * 4;
    for (const ip of ips) {
      put32(r, o, ip);
      o += 4;
    }
  };
  r[o++] = OPT_TYPE;
  r[o++] = 1;
  r[o++] = type;
  opt(OPT_SERVER_ID, GATEWAY);
  if (type !== NAK) {
    put32(r, 16, GUEST); // yiaddr
    put32(r, 20, GATEWAY); // siaddr
    if (bootfile) r.set(new TextEncoder().encode(bootfile).subarray(0, FILE_LEN - 1), FILE_OFF);
    opt(OPT_LEASE, LEASE_SECONDS);
    opt(OPT_MASK, NETMASK);
    opt(OPT_ROUTER, GATEWAY);
    opt(OPT_DNS, DNS);
  }
  r[o] = OPT_END;
  return r;
}
