/**
 * UDP port forwards: each host client (address, port) that sends to a `hostfwd=udp:` port gets a
 * port on 10.0.2.2 that stands for it; its datagrams reach the guest from 10.0.2.2:that port,
 * and what the guest sends back there goes to the client from the forward's socket. Mappings
 * close after the UDP idle time and count against `limits.udpFlows` with the guest's own flows.
 */
import type { Socket } from 'node:dgram';
import type { HostForward, Ip4, UserNetLimits } from './config.js';
import type { Counters } from './counters.js';
import type { UdpDeliver } from './udp-nat.js';
import { GATEWAY } from './config.js';
import { MAX_UDP_TO_GUEST } from './udp.js';

/** Ports on 10.0.2.2 that stand for host clients (below the TCP forwards' range). */
const FIRST_PORT = 32768;
const PORTS = 16384;

interface Mapping {
  client: { address: string; port: number };
  rule: HostForward;
  sock: Socket;
  gwPort: number;
  timer: NodeJS.Timeout;
}

export class UdpForwards {
  private readonly byClient = new Map<string, Mapping>();
  private readonly byPort = new Map<number, Mapping>();
  private next = 0;

  constructor(
    private readonly limits: UserNetLimits,
    private readonly counters: Counters,
    private readonly deliver: UdpDeliver,
    /** UDP flows the guest holds open itself (they share the limit). */
    private readonly otherFlows: () => number,
  ) {}

  get size(): number {
    return this.byPort.size;
  }

  /** A datagram from a host client on a forward: to the guest. */
  fromHost(msg: Buffer, from: { address: string; port: number }, rule: HostForward, sock: Socket) {
    if (msg.length > MAX_UDP_TO_GUEST) return this.counters.count('drop_udp_too_big');
    const key = `${rule.hostPort}/${from.address}:${from.port}`;
    let m = this.byClient.get(key);
    if (!m) {
      if (this.size + this.otherFlows() >= this.limits.udpFlows) {
        return this.counters.count('drop_udp_flow_limit');
      }
      let gwPort = 0;
      for (let i = 0; i < PORTS && !gwPort; i++) {
        const p = FIRST_PORT + ((this.next + i) % PORTS);
        if (!this.byPort.has(p)) gwPort = p;
      }
      this.next = (gwPort - FIRST_PORT + 1) % PORTS;
      const timer = setTimeout(() => this.drop(key), this.limits.udpIdleMs);
      timer.unref();
      m = { client: { address: from.address, port: from.port }, rule, sock, gwPort, timer };
      this.byClient.set(key, m);
      this.byPort.set(gwPort, m);
    } else m.timer.refresh();
    this.counters.count('hostfwd_udp_in');
    this.deliver(GATEWAY, m.gwPort, m.rule.guestAddr, m.rule.guestPort, msg);
  }

  /**
   * A guest datagram to 10.0.2.2:`gwPort`: sent to the client that port stands for. False when
   * the port stands for none (the datagram is then ordinary UDP).
   */
  fromGuest(guestIp: Ip4, gport: number, gwPort: number, data: Uint8Array): boolean {
    const m = this.byPort.get(gwPort);
    if (!m || m.rule.guestAddr !== guestIp || m.rule.guestPort !== gport) return false;
    m.timer.refresh();
    this.counters.count('hostfwd_udp_out');
    m.sock.send(data, m.client.port, m.client.address, (err) => {
      if (err) this.counters.count('drop_udp_send_error');
    });
    return true;
  }

  close(): void {
    for (const key of [...this.byClient.keys()]) this.drop(key);
  }

  private drop(key: string): void {
    const m = this.byClient.get(key);
    if (!m) return;
    clearTimeout(m.timer);
    this.byClient.delete(key);
    this.byPort.delete(m.gwPort);
  }
}
