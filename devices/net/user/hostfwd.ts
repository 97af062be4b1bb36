/**
 * Port forwards (`hostfwd=tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`): a listener on the
 * host (127.0.0.1 unless the rule names an address) whose connections are offered to the guest
 * as SYNs from 10.0.2.2. They work with restrict=on, as in QEMU. A port already in use is retried
 * a few times (a back end being replaced may still hold it), then counted and given up.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { HostForward } from './config.js';
import type { Counters } from './counters.js';

const LISTEN_TRIES = 10;
const LISTEN_RETRY_MS = 100;

export class PortForwards {
  private readonly servers: Server[] = [];
  private readonly retries = new Set<NodeJS.Timeout>();
  private closed = false;
  /** Settles once every rule listens or has given up (see `failed`). */
  readonly ready: Promise<void>;
  /** Rules that could not listen, with the reason. */
  readonly failed: string[] = [];

  constructor(
    rules: readonly HostForward[],
    private readonly counters: Counters,
    accept: (sock: Socket, rule: HostForward) => void,
  ) {
    this.ready = Promise.all(rules.map((r) => this.listen(r, accept))).then(() => {});
  }

  private listen(rule: HostForward, accept: (s: Socket, r: HostForward) => void): Promise<void> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => {
      if (this.closed) sock.destroy();
      else accept(sock, rule);
    });
    this.servers.push(server);
    return new Promise((resolve) => {
      let tries = 0;
      server.on('listening', () => resolve());
      server.on('error', (e: NodeJS.ErrnoException) => {
        if (this.closed) return resolve();
        if (e.code === 'EADDRINUSE' && ++tries < LISTEN_TRIES) {
          const t = setTimeout(() => {
            this.retries.delete(t);
            if (!this.closed) server.listen(rule.hostPort, rule.hostAddr);
          }, LISTEN_RETRY_MS);
          this.retries.add(t);
          return;
        }
        this.counters.count('hostfwd_listen_error');
        this.failed.push(`${rule.hostAddr}:${rule.hostPort}: ${e.message}`);
        resolve();
      });
      server.listen(rule.hostPort, rule.hostAddr);
    });
  }

  /** Stops listening (connections already accepted belong to the TCP table). */
  close(): void {
    this.closed = true;
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    for (const s of this.servers) s.close();
  }
}
