/**
 * Issue 4, acceptance 2: a NIC's link and back end change while a TCP transfer over `net=user`
 * runs. The guest sends to a host server (10.0.2.2 is the host's loopback under user NAT):
 *   - the cable is pulled mid-transfer: the guest's driver sees carrier loss, the host receives
 *     nothing more; the cable is plugged back: TCP retransmits and every byte arrives;
 *   - the NIC moves to `none` and back to `user` mid-transfer: the guest keeps running and sees
 *     the carrier go and come back; the old connection cannot survive a new NAT (its state is
 *     gone, as when QEMU's netdev is replaced), but a new transfer completes.
 * The machine runs in this process (VirtMachine) so the test holds its NIC ports directly.
 */
import { describe, it, expect } from 'vitest';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig, type NicModel } from '../../main/vm/config.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

/** A host TCP server that counts what each connection delivered. */
class CountingServer {
  readonly server: Server;
  /** Bytes of the connection accepted last. */
  bytes = 0;
  connections = 0;

  constructor() {
    this.server = createServer((s: Socket) => {
      this.connections++;
      this.bytes = 0;
      s.on('data', (d: Buffer) => (this.bytes += d.length));
      s.on('error', () => {}); // a reset from the NAT is part of the test
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const MIB = 1024 * 1024;

describe.each(['e1000', 'virtio'] as const)('net=user over %s while the link changes', (model) => {
  it('a pulled cable stalls a transfer that completes after link-up; none→user keeps the guest', async () => {
    const cfg = {
      ...defaultVmConfig(`user-switch-${model}`),
      nics: [{ model: model as NicModel, net: 'user', mac: '52:54:00:12:34:56' }],
    };
    const g = new Guest(await VirtMachine.open(cfg));
    const host = new CountingServer();
    const port = await host.listen();
    try {
      await g.expect(/~# /, 120_000);
      await g.run(
        'ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2; echo ok$((40+2))',
        /ok42/,
      );
      await g.run('sleep 3; cat /sys/class/net/eth0/carrier', /^1\r?$/m);
      const nic = g.vm.nic(0);
      const size = 16 * MIB;
      const send = (tag: string, mib: number): void =>
        g.send(
          `(dd if=/dev/zero bs=64k count=${mib * 16} 2>/dev/null | nc 10.0.2.2 ${port}; echo ${tag}""DONE) &`,
        );

      // The end marker may arrive while another command's output is awaited: look at everything.
      const done = (tag: string, ms: number): Promise<void> => g.seen(new RegExp(`${tag}DONE`), ms);

      // 1. Pull the cable mid-transfer; plug it back; every byte arrives.
      send('A', size / MIB);
      await until('the first MiB at the host', () => host.bytes >= MIB, 60_000);
      nic.port.setLink(false);
      await g.run('sleep 3; cat /sys/class/net/eth0/carrier', /^0\r?$/m);
      const stalled = host.bytes;
      await new Promise((r) => setTimeout(r, 1000));
      expect(host.bytes).toBe(stalled); // nothing crosses a pulled cable
      expect(stalled).toBeLessThan(size);
      nic.port.setLink(true);
      await done('A', 180_000);
      expect(host.bytes).toBe(size);
      await g.run('cat /sys/class/net/eth0/carrier', /^1\r?$/m);

      // 2. Move the NIC to none and back to user mid-transfer.
      send('B', size / MIB);
      await until(
        'the second transfer to start',
        () => host.connections === 2 && host.bytes >= MIB,
        60_000,
      );
      nic.port.setBackend('none');
      await g.run('sleep 3; cat /sys/class/net/eth0/carrier', /^0\r?$/m);
      nic.port.setBackend('user');
      await g.run('sleep 3; cat /sys/class/net/eth0/carrier', /^1\r?$/m);
      await done('B', 180_000); // the old connection ends (reset by the new NAT)
      send('C', 1);
      await done('C', 120_000);
      expect(host.connections).toBe(3);
      await until('the third transfer to arrive whole', () => host.bytes === MIB, 10_000);
      expect(g.vm.stats().nics![nic.name].net_link_changes).toBeGreaterThanOrEqual(4);
    } finally {
      g.vm.stop();
      await g.done;
      await g.vm.close();
      await host.close();
    }
  }, 600_000);
});
