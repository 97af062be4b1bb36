/**
 * virtio-net on PCIe (`--nic virtio-pci,net=user`) with the bundled guest, an e1000 beside it:
 * Linux's PCI core finds both functions (vendor/device in /sys/bus/pci/devices), virtio_pci
 * binds the virtio one without MSI-X (one INTx line) and virtio_net takes it over; udhcpc gets
 * the NAT's lease, busybox wget downloads a file from an HTTP server this test runs on the host
 * and md5sum in the guest must print the host's digest. Last, the cable is pulled and plugged
 * through the worker's device controls (what the host API and the monitor's set_link use):
 * the guest's carrier follows, and the network works again after.
 */
import { describe, it, expect } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig, type VmConfig } from '../../main/vm/config.js';
import { applyControl } from '../../main/worker/device-controls.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

const FILE_BYTES = 2 << 20;
const MAC = '52:54:00:12:36:01';

/** A udhcpc script (busybox calls it with $1 = deconfig|bound|renew and the lease in env). */
const DHCP_SCRIPT = [
  '#!/bin/sh',
  'case "$1" in',
  'deconfig) ip addr flush dev $interface; ip link set $interface up;;',
  'bound|renew) ip addr add $ip/$mask dev $interface; ip route add default via $router dev $interface; echo "lease $interface $ip via $router";;',
  'esac',
].join('\n');

function fileServer(body: Buffer): Promise<Server> {
  const s = createServer((req, res) => {
    res.setHeader('content-type', 'application/octet-stream');
    res.end(req.url === '/file' ? body : 'nope');
  });
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

describe('virtio-net on virtio-pci', () => {
  it('probes on PCIe beside an e1000, gets a lease, downloads a file; link down/up reaches the guest', async () => {
    const body = randomBytes(FILE_BYTES);
    const md5 = createHash('md5').update(body).digest('hex');
    const server = await fileServer(body);
    const port = (server.address() as AddressInfo).port;
    const dataDir = mkdtempSync(join(tmpdir(), 'wv-vpci-'));
    const config: VmConfig = {
      ...defaultVmConfig('vpcivm'),
      nics: [
        { model: 'virtio-pci', net: 'user', mac: MAC },
        { model: 'e1000', net: 'none', mac: '52:54:00:12:36:02' },
      ],
    };
    const vm = await VirtMachine.open(config);
    const g = new Guest(vm);
    try {
      await g.expect(/~# /, 120_000);
      // lspci, the hard way: every function's vendor:device and the driver bound to it.
      const pci = await g.run(
        'for d in /sys/bus/pci/devices/*; do echo "fn ${d##*/} $(cat $d/vendor):$(cat $d/device) ' +
          '$(basename $(readlink $d/driver) 2>/dev/null)"; done; echo p""ci-done',
        /([\s\S]*)pci-done/,
      );
      const fns = [...pci[1].matchAll(/^fn (\S+) 0x([0-9a-f]{4}):0x([0-9a-f]{4}) (\S*)\r?$/gm)];
      const byId = new Map(fns.map((m) => [`${m[2]}:${m[3]}`, { addr: m[1], driver: m[4] }]));
      expect(byId.get('1af4:1041')?.driver).toBe('virtio-pci');
      expect(byId.get('8086:100e')?.driver).toBe('e1000');
      const vfn = byId.get('1af4:1041')!.addr;
      expect(vfn).toBe('0000:00:01.0'); // first NIC, first PCI slot
      // No MSI-X capability, so virtio_pci takes one shared INTx interrupt named after the
      // device ("virtio0"), not per-queue vectors ("virtio0-config", "virtio0-input.0"...).
      const irqs = await g.run(
        'grep virtio /proc/interrupts; echo i""rq-done',
        /([\s\S]*)irq-done/,
      );
      expect(irqs[1]).toMatch(/ virtio0\r?$/m);
      expect(irqs[1]).not.toMatch(/virtio0-/);
      // The interface behind it, by MAC: its device is a virtio device driven by virtio_net.
      const m = await g.run(
        `for n in /sys/class/net/eth*; do [ "$(cat $n/address)" = ${MAC} ] && ` +
          `echo "if=\${n##*/} $(basename $(readlink $n/device/driver)) $(basename $(readlink -f $n/device/..))"; done`,
        /^if=(eth\d) (\S+) (\S+)\r?$/m,
      );
      const ifc = m[1];
      expect(m[2]).toBe('virtio_net');
      expect(m[3]).toBe(vfn);
      const dmesg = await g.run(
        'dmesg | grep -c "virtio-pci.*00:01.0"; echo d""m',
        /^(\d+)\r?\n.*dm/m,
      );
      expect(Number(dmesg[1])).toBeGreaterThan(0);

      const script = DHCP_SCRIPT.replace(/'/g, "'\\''");
      await g.run(
        `printf '%s\\n' '${script}' > /tmp/dhcp.sh; chmod +x /tmp/dhcp.sh; echo ok$((40+2))`,
        /ok42/,
      );
      await g.run(
        `udhcpc -i ${ifc} -s /tmp/dhcp.sh -q -n -t 5`,
        new RegExp(`lease ${ifc} 10\\.0\\.2\\.15 via 10\\.0\\.2\\.2`),
        30_000,
      );
      const got = await g.run(
        `wget -q -O - http://10.0.2.2:${port}/file | md5sum`,
        /^([0-9a-f]{32}) {2}-\r?$/m,
        120_000,
      );
      expect(got[1]).toBe(md5);

      // The cable, through the worker's controls (host API setDeviceControl, monitor set_link).
      const ctx = { machine: vm, config, dataDir };
      await expect(applyControl('virtio-net0', 'link', 'off', ctx)).resolves.toBe(
        'virtio-net0: link down',
      );
      await g.run(`sleep 1; echo carrier=$(cat /sys/class/net/${ifc}/carrier)`, /carrier=0/);
      await expect(applyControl('virtio-net0', 'link', 'on', ctx)).resolves.toBe(
        'virtio-net0: link up',
      );
      await g.run(`sleep 1; echo carrier=$(cat /sys/class/net/${ifc}/carrier)`, /carrier=1/);
      await g.run('ping -c 1 10.0.2.2', /1 packets transmitted, 1 packets received/, 30_000);

      const s = vm.stats();
      const t = s.virtio['virtio-net0'];
      expect(t.interrupts).toBeGreaterThan(0);
      expect(t.config_interrupts).toBeGreaterThanOrEqual(2); // link down, link up
      expect(t.needs_reset).toBe(0);
      // The lease of the client the guest started at boot, and the one udhcpc asked for above.
      expect(s.nics!['virtio-net0'].net_backend_dhcp_ack).toBe(2);
      expect(s.nics!['virtio-net0'].rx_bytes).toBeGreaterThan(FILE_BYTES);
      // Its BAR's exits are counted under its name, as the e1000's.
      expect(s.exits['virtio-net0'].writes).toBeGreaterThan(0);
    } finally {
      vm.stop();
      await g.done;
      await vm.close();
      server.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 300_000);
});
