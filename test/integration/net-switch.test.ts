/**
 * Two VMs in one process on `switch:lab`: each with a static IP, they ping each other over
 * e1000 and over virtio-net; the link is pulled and plugged back while the guests run; a large
 * TCP transfer (busybox httpd + wget) crosses the switch; tshark decodes the capture.
 * The machines are built in-process (VirtMachine), so both run loops share this event loop.
 */
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { guestsOnSwitch, hasTshark, ipv4Up, shutdown } from './switch-guests.js';

const root = join(import.meta.dirname, '..', '..');
const artifacts = join(root, 'test-artifacts');

describe.each(['e1000', 'virtio'] as const)('two VMs on switch:lab over %s', (model) => {
  it('ping each other, survive a pulled cable, move a 2 MB file; tshark reads the capture', async () => {
    mkdirSync(artifacts, { recursive: true });
    const pcap = join(artifacts, `net-switch-${model}.pcap`);
    const guests = await guestsOnSwitch({
      models: [model, model],
      sw: `lab-${model}`,
      name: 'net',
      macByte: model === 'e1000' ? '01' : '02',
      capture: pcap,
      ...ipv4Up,
    });
    const [a, b] = guests;
    try {
      if (model === 'e1000')
        await a.seen(/e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex/, 20_000);
      await a.run('ping -c 3 10.0.0.2', /3 packets transmitted, 3 packets received/);
      await b.run('ping -c 2 10.0.0.1', /2 packets transmitted, 2 packets received/);

      // Pull the cable: the guest's driver sees carrier loss; plugging it back restores traffic.
      const nic = a.vm.nic(0);
      nic.port.setLink(false);
      await a.run('sleep 3; cat /sys/class/net/eth0/carrier', /^0\r?$/m);
      await a.run('ping -c 1 -W 1 10.0.0.2', /1 packets transmitted, 0 packets received/);
      nic.port.setLink(true);
      await a.run('sleep 3; cat /sys/class/net/eth0/carrier', /^1\r?$/m);
      await a.run('ping -c 1 10.0.0.2', /1 packets transmitted, 1 packets received/);

      // A TCP transfer: TSO on e1000, large segments end to end on virtio-net.
      await b.run(
        'mkdir -p /tmp/w && dd if=/dev/zero of=/tmp/w/f bs=1k count=2048 2>/dev/null && httpd -h /tmp/w && echo up',
        /^up\r?$/m,
      );
      await a.run('wget -q -O - http://10.0.0.2/f | wc -c', /^2097152\r?$/m, 120_000);
      const s = a.vm.stats().nics![nic.name];
      expect(s.net_rx_bytes).toBeGreaterThan(2_000_000);
      expect(s.net_link_changes).toBe(2);
      const sb = b.vm.stats().nics![b.vm.nic(0).name];
      if (model === 'e1000') expect(sb.tx_tso).toBeGreaterThan(0);
      else expect(sb.tx_gso).toBeGreaterThan(0);
    } finally {
      await shutdown(guests);
    }
    expect(statSync(pcap).size).toBeGreaterThan(24);
    if (!hasTshark()) {
      console.warn('tshark not installed: capture not decoded (apt-get install tshark)');
      return;
    }
    const decoded = execFileSync('tshark', ['-r', pcap, '-Y', 'icmp'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(decoded).toMatch(/10\.0\.0\.1 → 10\.0\.0\.2\s+ICMP \d+ Echo \(ping\) request/);
    expect(decoded).toMatch(/10\.0\.0\.2 → 10\.0\.0\.1\s+ICMP \d+ Echo \(ping\) reply/);
    const http = execFileSync('tshark', ['-r', pcap, '-Y', 'http.request'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    expect(http).toMatch(/GET \/f HTTP/);
    expect(existsSync(pcap)).toBe(true);
  }, 300_000);
});
