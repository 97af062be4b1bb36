/**
 * Port forwards (`hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`): a listener on the
 * host (127.0.0.1 unless the rule names an address). A TCP connection is offered to the guest as
 * a SYN from 10.0.2.2; a UDP datagram goes to the guest from 10.0.2.2 and a port standing for
 * its sender (udp-forward.ts). A TCP rule with an IPv6 host address (`tcp:[::1]:H-:G`) listens
 * there and offers its connections from fec0::2 to the guest's IPv6 address (network.ts picks
 * it). They work with restrict=on, as in QEMU. A port already in use is
 * retried a few times (a back end being replaced may still hold it), then counted and given up.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { HostForward } from './config.js';
import type { Counters } from './counters.js';

const LISTEN_TRIES = 10;
const LISTEN_RETRY_MS = 100;

export interface ForwardHandlers {
  /** A host connection accepted on a TCP rule (paused until the guest accepts it). */
  tcp(sock: Socket, rule: HostForward): void;
  /** A datagram from a host client on a UDP rule; `sock` is the rule's socket, for replies. */
  udp(
    msg: Buffer,
    from: { address: string; port: number },
    rule: HostForward,
    sock: UdpSocket,
  ): void;
}

export class PortForwards {
  private readonly listeners: (Server | UdpSocket)[] = [];
  private readonly retries = new Set<NodeJS.Timeout>();
  private closed = false;
  /** Settles once every rule listens or has given up (see `failed`). */
  readonly ready: Promise<void>;
  /** Rules that could not listen, with the reason. */
  readonly failed: string[] = [];

  constructor(
    rules: readonly HostForward[],
    private readonly counters: Counters,
    handlers: ForwardHandlers,
  ) {
    this.ready = Promise.all(rules.map((r) => this.listen(r, handlers))).then(() => {});
  }

  private listen(rule: HostForward, h: ForwardHandlers): Promise<void> {
    let l: Server | UdpSocket;
    let start: () => void;
    if (rule.proto === 'tcp') {
      const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => {
        if (this.closed) sock.destroy();
        else h.tcp(sock, rule);
      });
      start = () => server.listen(rule.hostPort, rule.hostAddr);
      l = server;
    } else {
      const sock = createSocket('udp4');
      sock.on('message', (msg, from) => {
        if (!this.closed) h.udp(msg, from, rule, sock);
      });
      start = () => sock.bind(rule.hostPort, rule.hostAddr);
      l = sock;
    }
    this.listeners.push(l);
    return new Promise((resolve) => {
      let tries = 0;
      l.on('listening', () => resolve());
      l.on('error', (e: NodeJS.ErrnoException) => {
        if (this.closed) return resolve();
        if (e.code === 'EADDRINUSE' && ++tries < LISTEN_TRIES) {
          const t = setTimeout(() => {
            this.retries.delete(t);
            if (!this.closed) start();
          }, LISTEN_RETRY_MS);
          this.retries.add(t);
          return;
        }
        this.counters.count('hostfwd_listen_error');
        this.failed.push(`${rule.proto}:${rule.hostAddr}:${rule.hostPort}: ${e.message}`);
        resolve();
      });
      start();
    });
  }

  /** Stops listening (connections already accepted belong to the TCP table). */
  close(): void {
    this.closed = true;
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    for (const l of this.listeners) {
      try {
        l.close();
      } catch {
        // a UDP socket that never bound
      }
    }
  }
}
