/**
 * net=user with the bundled guest: one e1000 and one virtio-net, each on its own user network
 * (as two QEMU `-nic user`; the virtio-net is moved there from `none` while the guest runs),
 * each gets a DHCP lease (the e1000 at boot, from the client the bundled guest starts on every
 * NIC, with nothing typed; then both again from udhcpc typed in the shell); busybox wget in the
 * guest fetches a page from an HTTP server this test
 * runs on host 127.0.0.1 (the guest asks 10.0.2.2); a host client reaches busybox httpd in the
 * guest through each NIC's hostfwd. The NICs are tested
 * one after the other (both would get 10.0.2.15, and replies follow the guest's routes). Last, a
 * cable pulled for a second during a download: TCP resumes (retransmission) after link-up.
 */
import { describe, it, expect } from 'vitest';
import { createServer, type Server } from 'node:http';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig } from '../../main/vm/config.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

/** A udhcpc script (busybox calls it with $1 = deconfig|bound|renew and the lease in env). */
const DHCP_SCRIPT = [
  '#!/bin/sh',
  'case "$1" in',
  'deconfig) ip addr flush dev $interface; ip link set $interface up;;',
  'bound|renew) ip addr add $ip/$mask dev $interface; ip route add default via $router dev $interface; echo "lease $interface $ip via $router dns $dns";;',
  'esac',
].join('\n');

/** Bytes of /slow: sent in 48 KiB pieces 15 ms apart (about a second), to pull a cable under. */
const SLOW_BYTES = 64 * 48 * 1024;

/** Called when the host server has written the first piece of /slow (the transfer is under way). */
let onSlowStarted: () => void = () => {};

function hostServer(body: string): Promise<Server> {
  const s = createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    if (req.url !== '/slow') return res.end(req.url === '/page' ? body : 'nope');
    let sent = 0;
    const t = setInterval(() => {
      res.write(Buffer.alloc(48 * 1024, 0x61));
      if (sent === 0) onSlowStarted();
      sent += 48 * 1024;
      if (sent < SLOW_BYTES) return;
      clearInterval(t);
      res.end();
    }, 15);
    res.on('close', () => clearInterval(t));
  });
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

/** A port nobody listens on right now (the OS picks it). */
async function freePort(): Promise<number> {
  const s = await new Promise<Server>((r) => {
    const t = createServer();
    t.listen(0, '127.0.0.1', () => r(t));
  });
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function fetchHost(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (b += c));
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('net=user', () => {
  it('DHCP on e1000 and virtio-net, wget to the host, hostfwd to the guest httpd', async () => {
    const page = `hello from the host ${process.pid}\n`;
    const server = await hostServer(page);
    const hostPort = (server.address() as AddressInfo).port;
    const fwd = [await freePort(), await freePort()];
    const cfg = {
      ...defaultVmConfig('natvm'),
      nics: [
        {
          model: 'e1000' as const,
          net: `user,hostfwd=tcp::${fwd[0]}-:80`,
          mac: '52:54:00:12:34:01',
        },
        // Plugged into the user network while the guest runs (below).
        { model: 'virtio' as const, net: 'none', mac: '52:54:00:12:34:02' },
      ],
    };
    const g = new Guest(await VirtMachine.open(cfg));
    try {
      await g.expect(/~# /, 120_000);
      // The guest's own DHCP client configured the e1000 as it booted: address, route, DNS.
      const e1000If = (
        await g.run(
          'for n in /sys/class/net/eth*; do [ "$(cat $n/address)" = 52:54:00:12:34:01 ] && echo "if=${n##*/}"; done',
          /^if=(eth\d)\r?$/m,
        )
      )[1];
      await g.run(
        `for i in $(seq 50); do ip -4 -o addr show dev ${e1000If} | grep -q 10.0.2.15 && break; sleep 0.2; done; ip -4 -o addr show dev ${e1000If}`,
        /inet 10\.0\.2\.15\/24/,
      );
      await g.run(
        'ip route; cat /etc/resolv.conf',
        /default via 10\.0\.2\.2[^]*nameserver 10\.0\.2\.3/,
      );
      await g.run(`wget -q -O - http://10.0.2.2:${hostPort}/page`, new RegExp(page.trim()), 30_000);
      expect(g.vm.stats().nics![g.vm.nic(0).name].net_backend_dhcp_ack).toBe(1);
      // The boot-time clients go, so that the leases below are the shell's own.
      await g.run('killall udhcpc; echo gone$((40+2))', /gone42/);
      g.vm.nic(1).port.setBackend(`user,hostfwd=tcp::${fwd[1]}-:80`);
      const script = DHCP_SCRIPT.replace(/'/g, "'\\''");
      await g.run(
        `printf '%s\\n' '${script}' > /tmp/dhcp.sh; chmod +x /tmp/dhcp.sh; echo ok$((40+2))`,
        /ok42/,
      );
      await g.run(
        'mkdir -p /tmp/www && echo "guest page" > /tmp/www/index.html && httpd -h /tmp/www && echo up',
        /^up\r?$/m,
      );
      for (const [i, mac] of ['52:54:00:12:34:01', '52:54:00:12:34:02'].entries()) {
        // The interface with this NIC's MAC; the other one is taken down.
        const m = await g.run(
          `for n in /sys/class/net/eth*; do [ "$(cat $n/address)" = ${mac} ] && echo "if=\${n##*/}"; done`,
          /^if=(eth\d)\r?$/m,
        );
        const ifc = m[1];
        await g.run(
          `for n in /sys/class/net/eth*; do ip addr flush dev \${n##*/}; ip link set \${n##*/} down; done; echo down`,
          /^down\r?$/m,
        );
        await g.run(
          `udhcpc -i ${ifc} -s /tmp/dhcp.sh -q -n -t 5`,
          new RegExp(`lease ${ifc} 10\\.0\\.2\\.15 via 10\\.0\\.2\\.2 dns 10\\.0\\.2\\.3`),
          30_000,
        );
        await g.run('ping -c 1 10.0.2.2', /1 packets transmitted, 1 packets received/);
        await g.run(
          `wget -q -O - http://10.0.2.2:${hostPort}/page`,
          new RegExp(page.trim()),
          30_000,
        );
        expect(await fetchHost(fwd[i], '/index.html')).toBe('guest page\n');
        const s = g.vm.stats().nics![g.vm.nic(i).name];
        expect(s.net_backend_dhcp_ack).toBe(i === 0 ? 2 : 1); // the e1000's boot lease, and this
        expect(s.net_backend_icmp_echo_replies).toBe(1);
        // wget's connections to the host (the e1000's twice) and the forwarded one from the host.
        expect(s.net_backend_tcp_established).toBe(i === 0 ? 3 : 2);
      }
      // A cable pulled for a second in the middle of a download: TCP resumes after link-up.
      // The cable is pulled once the host is sending (a slow guest, e.g. with a JIT compiling
      // everything, may take longer than any fixed delay to connect), while most is yet to come.
      const port = g.vm.nic(1).port;
      const started = new Promise<void>((r) => (onSlowStarted = r));
      g.send(`wget -q -O - http://10.0.2.2:${hostPort}/slow | wc -c`);
      await started;
      await new Promise((r) => setTimeout(r, 100));
      port.setLink(false);
      await new Promise((r) => setTimeout(r, 1000));
      port.setLink(true);
      await g.expect(new RegExp(`^${SLOW_BYTES}\\r?$`, 'm'), 30_000);
      const s = g.vm.stats().nics![g.vm.nic(1).name];
      expect(s.net_link_changes).toBe(3); // none → user, then the pulled and plugged cable
      expect(s.net_backend_tcp_retransmit).toBeGreaterThan(0);
    } finally {
      g.vm.stop();
      await g.done;
      await g.vm.close();
      server.close();
    }
  }, 180_000);
});
