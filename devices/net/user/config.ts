/**
 * What `net=user` is made of: QEMU's user-network addresses (10.0.2.0/24, gateway .2, DNS .3,
 * guest .15), the limits that keep a guest from exhausting host memory, and the spec syntax
 * `user[,restrict=on][,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...
 * [,tftp=DIR][,bootfile=FILE]` (an IPv6 forward: `tcp:[HOST6]:HOSTPORT-[[GUEST6]]:GUESTPORT`).
 */
import { NetSpecError } from '../backend.js';
import { PREFIX6, parseIp6, type Ip6 } from './ipv6.js';

/** An IPv4 address as an unsigned 32-bit number. */
export type Ip4 = number;

export function parseIp4(s: string): Ip4 | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  if (b.some((x) => x > 255)) return undefined;
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

export const formatIp4 = (a: Ip4): string =>
  `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;

/** The virtual network, as QEMU's slirp lays it out. */
export const NETWORK: Ip4 = parseIp4('10.0.2.0')!;
export const NETMASK: Ip4 = parseIp4('255.255.255.0')!;
export const GATEWAY: Ip4 = parseIp4('10.0.2.2')!;
export const DNS: Ip4 = parseIp4('10.0.2.3')!;
export const GUEST: Ip4 = parseIp4('10.0.2.15')!;
export const BROADCAST: Ip4 = 0xffffffff;
export const LOOPBACK: Ip4 = parseIp4('127.0.0.1')!;
/** The MAC the gateway and DNS addresses answer with (slirp's 52:55:0a:00:02:02). */
export const GATEWAY_MAC = Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02);
/** DHCP lease time, seconds. */
export const LEASE_SECONDS = 86_400;

/** Bounds on what one guest can make the host hold; tests pass smaller ones. */
export interface UserNetLimits {
  /** TCP connections at once (both directions); a SYN beyond gets a RST. */
  tcpConnections: number;
  /** Connections the guest opened that are not yet established; SYNs beyond are dropped. */
  tcpHalfOpen: number;
  /**
   * Guest → host bytes waiting in one host socket's write buffer at most (the window we
   * advertise): large enough that the window is not what limits a transfer within a slice.
   */
  tcpRecvBuffer: number;
  /** The same for all connections together: each gets at most this divided by their number. */
  tcpRecvTotal: number;
  /** Host → guest bytes buffered (sent but unacknowledged, or waiting for the guest's window). */
  tcpSendBuffer: number;
  /** UDP flows (guest address/port to a destination) at once; new ones beyond are dropped. */
  udpFlows: number;
  /** A UDP flow without traffic is closed after this many ms. */
  udpIdleMs: number;
  /** A host connection that does not complete in this time is refused to the guest. */
  tcpConnectMs: number;
  /** Retransmissions of one segment before the connection is reset. */
  tcpRetries: number;
  /** IP datagrams being reassembled at once (both families); a new one evicts the oldest. */
  fragDatagrams: number;
  /** Fragments one datagram may have (45 at MTU 1500 make 64 KiB); beyond, it is dropped. */
  fragPerDatagram: number;
  /** Fragment bytes held by all datagrams in progress; beyond, the oldest are evicted. */
  fragBytes: number;
  /** A datagram not complete in this many ms is dropped (Linux's ipfrag_time: 30 s). */
  fragTimeoutMs: number;
  /**
   * Echo requests beyond the gateway in flight through the host's ICMP socket (both families);
   * a new one beyond evicts the oldest.
   */
  icmpEchoes: number;
  /** A relayed echo request not answered in this many ms is forgotten (its reply dropped). */
  icmpTimeoutMs: number;
  /** Echo data bytes relayed at most (`ping -s`); a larger request or reply is dropped. */
  icmpPayload: number;
  /** TFTP transfers at once (`tftp=`); a read request beyond gets an ERROR. */
  tftpSessions: number;
  /**
   * A TFTP packet not acknowledged in this many ms is sent again; a transfer that waits this
   * long (for the guest or for a host read) `tftpRetries` + 1 times in a row is given up.
   */
  tftpTimeoutMs: number;
  /** Retransmissions of one TFTP packet before the transfer is given up. */
  tftpRetries: number;
}

export const DEFAULT_LIMITS: UserNetLimits = {
  tcpConnections: 256,
  tcpHalfOpen: 64,
  tcpRecvBuffer: 4 << 20,
  tcpRecvTotal: 32 << 20,
  tcpSendBuffer: 256 * 1024,
  udpFlows: 128,
  udpIdleMs: 60_000,
  tcpConnectMs: 20_000,
  tcpRetries: 8,
  fragDatagrams: 64,
  fragPerDatagram: 128,
  fragBytes: 2 << 20,
  fragTimeoutMs: 30_000,
  icmpEchoes: 128,
  icmpTimeoutMs: 10_000,
  icmpPayload: 16_384,
  tftpSessions: 16,
  tftpTimeoutMs: 1000,
  tftpRetries: 5,
};

export interface HostForward {
  proto: 'tcp' | 'udp';
  /** Host address to listen on (default 127.0.0.1). */
  hostAddr: string;
  hostPort: number;
  /** Guest address to connect to (default the DHCP address, 10.0.2.15); unused over IPv6. */
  guestAddr: Ip4;
  guestPort: number;
  /**
   * Set for an IPv6 rule (`tcp:[::1]:H-:G`, host address in brackets): the guest's IPv6 address
   * to connect to, or 'auto' for the one it autoconfigured in fec0::/64 (SLAAC).
   */
  guestAddr6?: Ip6 | 'auto';
}

export interface UserNetSpec {
  /** The guest may reach only the built-in services (DHCP, ARP, gateway ping); forwards work. */
  restrict: boolean;
  hostfwd: HostForward[];
  /**
   * `tftp=DIR`: the directory the built-in TFTP server at 10.0.2.2:69 (and fec0::2) serves,
   * read-only, as given (checked and resolved when the network opens).
   */
  tftp?: string;
  /** `bootfile=FILE`: the boot file DHCP names in the BOOTP `file` field (with siaddr 10.0.2.2). */
  bootfile?: string;
}

/** Bytes of a boot file name at most: BOOTP's 128-byte `file` field holds it and a NUL. */
const MAX_BOOTFILE = 127;

/** Port forwards per NIC at most. */
export const MAX_HOSTFWD = 32;

function port(s: string, what: string): number {
  const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new NetSpecError(`hostfwd: ${what} "${s}" is not 1..65535`);
  return n;
}

/**
 * Parses one `hostfwd=` value: `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`; an IPv6
 * host address in brackets (`tcp:[::1]:H-:G`) makes an IPv6 forward (TCP only) to the guest's
 * autoconfigured fec0:: address, or to `[fec0::...]` when given.
 */
export function parseHostForward(v: string): HostForward {
  const m6 = /^(tcp|udp)?:\[([^\]]*)\]:(\d*)-(?:\[([^\]]*)\])?:(\d*)$/.exec(v);
  if (m6) return parseHostForward6(v, m6);
  const m = /^(tcp|udp)?:([^:]*):(\d*)-([^:]*):(\d*)$/.exec(v);
  if (!m) {
    throw new NetSpecError(
      `hostfwd=${v}: expected tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (e.g. tcp::8080-:80)`,
    );
  }
  const hostAddr = m[2] || '127.0.0.1';
  if (parseIp4(hostAddr) === undefined) {
    throw new NetSpecError(`hostfwd=${v}: host address "${hostAddr}" is not an IPv4 address`);
  }
  const guestAddr = m[4] ? parseIp4(m[4]) : GUEST;
  if (guestAddr === undefined || (guestAddr & NETMASK) >>> 0 !== NETWORK) {
    throw new NetSpecError(`hostfwd=${v}: guest address "${m[4]}" is not in 10.0.2.0/24`);
  }
  return {
    proto: m[1] === 'udp' ? 'udp' : 'tcp',
    hostAddr,
    hostPort: port(m[3], 'host port'),
    guestAddr,
    guestPort: port(m[5], 'guest port'),
  };
}

function parseHostForward6(v: string, m: RegExpExecArray): HostForward {
  if (m[1] === 'udp') throw new NetSpecError(`hostfwd=${v}: IPv6 forwards are TCP only`);
  const hostAddr = parseIp6(m[2]);
  if (!hostAddr) throw new NetSpecError(`hostfwd=${v}: host address "[${m[2]}]" is not IPv6`);
  let guestAddr6: Ip6 | 'auto' = 'auto';
  if (m[4] !== undefined) {
    const g = parseIp6(m[4]);
    if (!g || !g.subarray(0, 8).every((b, i) => b === PREFIX6[i])) {
      throw new NetSpecError(`hostfwd=${v}: guest address "[${m[4]}]" is not in fec0::/64`);
    }
    guestAddr6 = g;
  }
  return {
    proto: 'tcp',
    hostAddr: m[2],
    hostPort: port(m[3], 'host port'),
    guestAddr: GUEST,
    guestPort: port(m[5], 'guest port'),
    guestAddr6,
  };
}

/**
 * Parses `user[,restrict=on|off][,hostfwd=...]...[,tftp=DIR][,bootfile=FILE]`; throws
 * NetSpecError naming the fault. Whether DIR exists is checked when the network opens.
 */
export function parseUserSpec(spec: string): UserNetSpec {
  const [head, ...opts] = spec.split(',');
  if (head !== 'user') throw new NetSpecError(`net="${spec}" is not a user network`);
  const out: UserNetSpec = { restrict: false, hostfwd: [] };
  for (const o of opts) {
    const eq = o.indexOf('=');
    const k = eq < 0 ? o : o.slice(0, eq);
    const v = eq < 0 ? '' : o.slice(eq + 1);
    if (k === 'restrict') {
      if (!['on', 'off', 'yes', 'no'].includes(v)) {
        throw new NetSpecError(`restrict=${v}: use restrict=on or restrict=off`);
      }
      out.restrict = v === 'on' || v === 'yes';
    } else if (k === 'hostfwd') {
      const f = parseHostForward(v);
      const dup = out.hostfwd.find(
        (g) => g.proto === f.proto && g.hostPort === f.hostPort && g.hostAddr === f.hostAddr,
      );
      if (dup) throw new NetSpecError(`hostfwd=${v}: host port ${f.hostPort} is forwarded twice`);
      out.hostfwd.push(f);
    } else if (k === 'tftp' || k === 'bootfile') {
      if (eq < 0 || v === '')
        throw new NetSpecError(`${k}=: give a ${k === 'tftp' ? 'directory' : 'file name'}`);
      if (out[k] !== undefined) throw new NetSpecError(`net=user: ${k}= is given twice`);
      if (k === 'bootfile' && new TextEncoder().encode(v).length > MAX_BOOTFILE) {
        throw new NetSpecError(
          `bootfile=${v}: longer than ${MAX_BOOTFILE} bytes (BOOTP's file field)`,
        );
      }
      out[k] = v;
    } else {
      throw new NetSpecError(
        `net=user: unknown option "${o}" (restrict=, hostfwd=, tftp=, bootfile=)`,
      );
    }
  }
  if (out.hostfwd.length > MAX_HOSTFWD) {
    throw new NetSpecError(`net=user: at most ${MAX_HOSTFWD} hostfwd= rules`);
  }
  return out;
}
