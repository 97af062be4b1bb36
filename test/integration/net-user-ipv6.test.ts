/**
 * IPv6 on net=user with the bundled guest, as QEMU's slirp does it: the guest's router
 * solicitation gets our advertisement of fec0::/64 and it autoconfigures an address (SLAAC),
 * `ping6 fec0::2` is answered by the gateway, busybox nslookup asks a DNS server this test runs
 * on the host's ::1 through [fec0::2]:PORT (UDP over IPv6), and busybox wget reaches an HTTP server this test
 * runs on the host's ::1 as http://[fec0::2]:PORT/ — a small page and 2 MiB of random bytes
 * whose md5sum must match, on a virtio-net (TSO6 frames towards the guest) and on an e1000
 * (the same frames cut to the MSS by its receive path). Last, `hostfwd=tcp:[::1]:PORT-:80`: a
 * host client on [::1]:PORT reaches busybox httpd in the guest at its SLAAC address.
 */
import { describe, it, expect } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig } from '../../main/vm/config.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

const BIG = randomBytes(2 * 1024 * 1024);

function hostServer(page: string): Promise<Server> {
  const s = createServer((req, res) => {
    res.setHeader('content-type', 'application/octet-stream');
    res.end(req.url === '/big' ? BIG : req.url === '/page' ? page : 'nope');
  });
  return new Promise((r) => s.listen(0, '::1', () => r(s)));
}

/** A DNS server on the host's ::1 that answers every A query with 192.0.2.7 (UDP over IPv6). */
function hostDns(): Promise<Socket> {
  const sock = createSocket('udp6');
  sock.on('message', (q, r) => {
    let end = 12;
    while (end < q.length && q[end] !== 0) end += q[end] + 1;
    end += 5; // the name's final 0, its type and class
    if (q.length < 17 || end > q.length) return;
    const isA = q.readUInt16BE(end - 4) === 1;
    const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
    const a = Buffer.concat([q.subarray(0, end), isA ? answer : Buffer.alloc(0)]);
    a.writeUInt16BE(0x8180, 2); // a response, recursion available
    a.writeUInt16BE(isA ? 1 : 0, 6); // answers
    a.writeUInt32BE(0, 8); // no authority or additional records
    sock.send(a, r.port, r.address);
  });
  return new Promise((ok) => sock.bind(0, '::1', () => ok(sock)));
}

/** A port nobody listens on right now on ::1 (the OS picks it). */
async function freePort6(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '::1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function fetch6(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '::1', port, path }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
}

describe.each(['virtio', 'e1000'] as const)('net=user over IPv6 on %s', (model) => {
  it('SLAAC gives a fec0:: address, ping6 fec0::2, nslookup and wget via fec0::2 reach the host ::1, hostfwd from [::1] reaches the guest', async () => {
    const page = `hello over IPv6 ${process.pid}`;
    const server = await hostServer(page);
    const port = (server.address() as AddressInfo).port;
    const mac = '52:54:00:12:36:01';
    const fwd = await freePort6();
    const cfg = {
      ...defaultVmConfig(`nat6-${model}`),
      nics: [{ model, net: `user,hostfwd=tcp:[::1]:${fwd}-:80`, mac }],
    };
    const dns = await hostDns();
    const g = new Guest(await VirtMachine.open(cfg));
    try {
      await g.expect(/~# /, 120_000);
      await g.run('ip link set eth0 up; echo ok$((40+2))', /ok42/);
      // The address SLAAC builds from the prefix and the MAC (EUI-64), once DAD is done.
      await g.run(
        'for i in $(seq 60); do ip -6 addr show dev eth0 | grep -q "inet6 fec0::5054:ff:fe12:3601/64 scope site" && ! ip -6 addr show dev eth0 | grep -q tentative && break; sleep 0.5; done; ip -6 addr show dev eth0 | grep -o "inet6 fec0::[0-9a-f:]*/64"',
        /inet6 fec0::5054:ff:fe12:3601\/64/,
        60_000,
      );
      await g.run('ip -6 route show default', /default via fe80::2 dev eth0/);
      await g.run('ping6 -c 2 fec0::2', /2 packets transmitted, 2 packets received/, 30_000);
      await g.run(`wget -q -O - 'http://[fec0::2]:${port}/page'; echo`, new RegExp(page), 30_000);
      // UDP over IPv6: busybox nslookup asks the host's ::1 DNS server through fec0::2
      await g.run(
        `nslookup -type=a wasmvisor.test '[fec0::2]:${dns.address().port}'`,
        /Address:\s+192\.0\.2\.7/,
        30_000,
      );
      const sum = createHash('md5').update(BIG).digest('hex');
      const got = await g.run(
        `wget -q -O - 'http://[fec0::2]:${port}/big' | md5sum`,
        /^([0-9a-f]{32})\s+-\r?$/m,
        120_000,
      );
      expect(got[1]).toBe(sum);
      // A host client on [::1]:fwd reaches the guest's httpd at fec0::5054:ff:fe12:3601.
      await g.run(
        'mkdir -p /tmp/www && echo "guest page over IPv6" > /tmp/www/index.html && httpd -h /tmp/www && echo up',
        /^up\r?$/m,
      );
      expect(await fetch6(fwd, '/index.html')).toBe('guest page over IPv6\n');
      const s = g.vm.stats().nics![g.vm.nic(0).name];
      expect(s.net_backend_ndp_router_adverts).toBeGreaterThan(0);
      expect(s.net_backend_ndp_neighbor_adverts).toBeGreaterThan(0);
      expect(s.net_backend_icmp6_echo_replies).toBe(2);
      expect(s.net_backend_udp_in).toBeGreaterThan(0);
      expect(s.net_backend_tcp_established).toBe(3);
      expect(s.net_backend_hostfwd_connections).toBe(1);
      // The download left the user network as TSO6 frames; a virtio-net took them whole.
      expect(s.net_backend_tcp_tso_out).toBeGreaterThan(0);
      if (model === 'virtio') expect(s.rx_gso).toBeGreaterThan(0);
    } finally {
      g.vm.stop();
      await g.done;
      await g.vm.close();
      server.close();
      dns.close();
    }
  }, 180_000);
});
