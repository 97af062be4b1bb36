/**
 * UDP NAT: each guest (address, port) → (destination, port) pair becomes a flow with its own
 * host socket; what the host sends back to that socket reaches the guest from the destination
 * the guest used (10.0.2.2 for the host's loopback, 10.0.2.3 for the resolver). Flows close
 * after an idle time, and there are at most `limits.udpFlows` of them: a datagram that would
 * open one more is dropped and counted.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Counters } from './counters.js';
import type { UserNetLimits } from './config.js';
import { addrKey, type IpAddr } from './ipv6.js';
import { MAX_UDP6_TO_GUEST, MAX_UDP_TO_GUEST } from './udp.js';

/** Where a flow's host socket sends, and what the guest sees as the peer. */
export interface UdpTarget {
  host: string;
  port: number;
}

/** A datagram for the guest: from (src, sport) to (dst, dport). */
export type UdpDeliver = (
  src: IpAddr,
  sport: number,
  dst: IpAddr,
  dport: number,
  data: Buffer,
) => void;

interface Flow {
  sock: Socket;
  timer: NodeJS.Timeout;
}

export class UdpNat {
  private readonly flows = new Map<string, Flow>();

  constructor(
    private readonly limits: UserNetLimits,
    private readonly counters: Counters,
    private readonly deliver: UdpDeliver,
  ) {}

  get size(): number {
    return this.flows.size;
  }

  /** Sends a guest datagram (guestIp:gport → peer:pport as the guest sees it) to `to`. */
  send(
    guestIp: IpAddr,
    gport: number,
    peer: IpAddr,
    pport: number,
    to: UdpTarget,
    data: Uint8Array,
  ) {
    const key = `${addrKey(guestIp)}:${gport}>${addrKey(peer)}:${pport}`;
    let f = this.flows.get(key);
    if (!f) {
      if (this.flows.size >= this.limits.udpFlows) {
        this.counters.count('drop_udp_flow_limit');
        return;
      }
      f = this.open(key, guestIp, gport, peer, pport, isIPv6(to.host));
    } else f.timer.refresh();
    this.counters.count('udp_out');
    // The frame is not written after the NIC hands it over, so the socket may keep a view.
    f.sock.send(data, to.port, to.host, (err) => {
      if (err) this.counters.count('drop_udp_send_error');
    });
  }

  /** Closes every flow's socket. */
  close(): void {
    for (const key of [...this.flows.keys()]) this.drop(key);
  }

  private open(
    key: string,
    guestIp: IpAddr,
    gport: number,
    peer: IpAddr,
    pport: number,
    hostV6: boolean,
  ): Flow {
    // The host socket's family follows the host end (an IPv6 guest's DNS may be an IPv4 server).
    const sock = createSocket(hostV6 ? 'udp6' : 'udp4');
    const max = typeof guestIp === 'number' ? MAX_UDP_TO_GUEST : MAX_UDP6_TO_GUEST;
    sock.on('message', (msg) => {
      if (msg.length > max) {
        this.counters.count('drop_udp_too_big');
        return;
      }
      this.counters.count('udp_in');
      this.flows.get(key)?.timer.refresh();
      this.deliver(peer, pport, guestIp, gport, msg);
    });
    sock.on('error', () => {
      this.counters.count('udp_socket_error');
      this.drop(key);
    });
    const timer = setTimeout(() => this.drop(key), this.limits.udpIdleMs);
    timer.unref();
    const f = { sock, timer };
    this.flows.set(key, f);
    return f;
  }

  private drop(key: string): void {
    const f = this.flows.get(key);
    if (!f) return;
    this.flows.delete(key);
    clearTimeout(f.timer);
    try {
      f.sock.close();
    } catch {
      // already closed
    }
  }
}
