/**
 * Downloads over net=user: the bundled guest fetches a multi-MiB file of random bytes from an
 * HTTP server this test runs on host 127.0.0.1 (busybox wget from 10.0.2.2), once over a
 * virtio-net and once over an e1000, and md5sum in the guest must print the host's digest.
 * The NAT sends the download as large TSO segments: the virtio-net's driver negotiated
 * GUEST_TSO4, so they arrive whole (rx_gso counts them, nothing is cut); the e1000 model cuts
 * them itself. The virtio-net's capture holds wire frames: tshark finds no segment over
 * the MSS, every TCP checksum good, and the payload bytes add up to the file. The e1000 cuts the
 * segments itself (1456-byte pieces, word-aligned in Linux's buffers), and its capture holds
 * what the guest got: as many frames as the guest's rx_packets counted over the download, the
 * same bytes as its rx_bytes, mostly 1456-byte payloads, checksums good.
 */
import { describe, it, expect } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig } from '../../main/vm/config.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';
import { hasTshark } from './switch-guests.js';

const FILE_BYTES = 6 << 20;
const MACS = { virtio: '52:54:00:12:35:01', e1000: '52:54:00:12:35:02' } as const;

function fileServer(body: Buffer): Promise<Server> {
  const s = createServer((req, res) => {
    res.setHeader('content-type', 'application/octet-stream');
    res.end(req.url === '/file' ? body : 'nope');
  });
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

/** tshark's `fields` of every frame of `pcap` that `filter` keeps, checksums verified, as numbers. */
function tsharkFields(pcap: string, filter: string, fields: string[]): number[][] {
  const out = execFileSync(
    'tshark',
    [
      '-r', pcap, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE',
      '-Y', filter, '-T', 'fields', ...fields.flatMap((f) => ['-e', f]),
    ],
    { encoding: 'utf-8', maxBuffer: 64 << 20 },
  ); // prettier-ignore
  return out
    .trim()
    .split('\n')
    .map((l) => l.split('\t').map(Number));
}

describe('net=user downloads', () => {
  it('a virtio-net guest gets a 6 MiB file intact in large segments; an e1000 guest too', async () => {
    const body = randomBytes(FILE_BYTES);
    const md5 = createHash('md5').update(body).digest('hex');
    const server = await fileServer(body);
    const port = (server.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'wv-download-'));
    const pcap = join(dir, 'virtio.pcap');
    const e1000Pcap = join(dir, 'e1000.pcap');
    const cfg = {
      ...defaultVmConfig('dlvm'),
      nics: [
        { model: 'virtio' as const, net: 'user', mac: MACS.virtio, capture: pcap },
        { model: 'e1000' as const, net: 'user', mac: MACS.e1000 },
      ],
    };
    const g = new Guest(await VirtMachine.open(cfg));
    let guestRx = { packets: 0, bytes: 0 };
    try {
      await g.expect(/~# /, 120_000);
      for (const [i, model] of (['virtio', 'e1000'] as const).entries()) {
        // This NIC's interface gets 10.0.2.15, the other one goes down (both NATs use it). The
        // DHCP clients the guest started at boot go first: a lease one of them takes late must
        // not configure an interface behind the test's back. IPv6 is off on both: its router
        // solicitation after carrier-up is answered by the NAT's advertisement, a frame that can
        // land between the guest's counters and the capture's start (CI saw 4368 vs 4367). The
        // counters are read only once the driver reports carrier, so link-up traffic is over.
        const m = await g.run(
          `for n in /sys/class/net/eth*; do [ "$(cat $n/address)" = ${MACS[model]} ] && echo "if=\${n##*/}"; done`,
          /^if=(eth\d)\r?$/m,
        );
        await g.run(
          `killall -q udhcpc; for n in /sys/class/net/eth*; do ip addr flush dev \${n##*/}; ip link set \${n##*/} down; ` +
            `echo 1 > /proc/sys/net/ipv6/conf/\${n##*/}/disable_ipv6; done; ` +
            `ip addr add 10.0.2.15/24 dev ${m[1]} && ip link set ${m[1]} up && ` +
            `until [ "$(cat /sys/class/net/${m[1]}/carrier)" = 1 ]; do sleep 0.1; done; echo u""p`,
          /^up\r?$/m,
        );
        /**
         * The guest's receive counters for this interface (what its driver got), once nothing has
         * arrived for half a second: the switch of interfaces leaves strays (the old connection's
         * last segment answered with an ARP reply and a RST), which must not fall between the
         * capture's start or end and the counters.
         */
        const stat = `/sys/class/net/${m[1]}/statistics`;
        const rx = async () => {
          const c = await g.run(
            `a=$(cat ${stat}/rx_packets); while sleep 0.5; b=$(cat ${stat}/rx_packets); [ $a != $b ]; do a=$b; done; ` +
              `echo rx=$b,$(cat ${stat}/rx_bytes)`,
            /^rx=(\d+),(\d+)\r?$/m,
          );
          return { packets: Number(c[1]), bytes: Number(c[2]) };
        };
        const before = model === 'e1000' ? await rx() : undefined;
        if (model === 'e1000') await g.vm.nic(i).port.startCapture(e1000Pcap);
        const got = await g.run(
          `wget -q -O - http://10.0.2.2:${port}/file | md5sum`,
          /^([0-9a-f]{32}) {2}-\r?$/m,
          120_000,
        );
        if (before) {
          const after = await rx();
          await g.vm.nic(i).port.stopCapture();
          guestRx = { packets: after.packets - before.packets, bytes: after.bytes - before.bytes };
        }
        expect(got[1], `${model}: md5 of the download in the guest`).toBe(md5);
        const s = g.vm.stats().nics![g.vm.nic(i).name];
        expect(s.net_backend_tcp_bytes_in).toBeGreaterThanOrEqual(FILE_BYTES);
        expect(s.net_backend_tcp_tso_out).toBeGreaterThan(0);
        if (model === 'virtio') {
          // Most of the file came in frames of many MSS each, passed up whole.
          expect(s.rx_gso).toBeGreaterThan(FILE_BYTES / 65_536 / 2);
          expect(s.rx_segmented).toBe(0);
          expect(s.rx_bytes / s.rx_packets).toBeGreaterThan(8 * 1460);
          // Linux takes EVENT_IDX: its sent chains come back when the slice ends (TCP corks
          // meanwhile), never in the kick as for a polling firmware driver.
          expect(s.tx_packets).toBeGreaterThan(0);
          expect(s.tx_polled_completions).toBe(0);
        } else {
          expect(s.rx_packets).toBeGreaterThan(FILE_BYTES / 1460);
        }
      }
      await g.vm.nic(0).port.stopCapture();
      if (!hasTshark()) {
        console.warn('tshark not installed: capture not decoded (apt-get install tshark)');
        return;
      }
      // The HTTP server's segments to the guest, as tshark decodes them with checksum checks on.
      const rows = tsharkFields(pcap, `tcp.srcport == ${port}`, [
        'tcp.len',
        'tcp.checksum.status',
        'ip.checksum.status',
      ]);
      const lens = rows.map((r) => r[0]);
      expect(Math.max(...lens)).toBeLessThanOrEqual(1460);
      // Wireshark's checksum status: 1 is good (0 bad, 2 unverified).
      expect(rows.filter((r) => r[1] !== 1 || r[2] !== 1)).toEqual([]);
      // The file and the HTTP header; retransmissions could only add to it.
      const payload = lens.reduce((a, b) => a + b, 0);
      expect(payload).toBeGreaterThan(FILE_BYTES);
      expect(payload).toBeLessThan(FILE_BYTES + 64 * 1024);

      // The e1000's capture against the guest's own counters: the frames it received.
      const e1000Rows = tsharkFields(e1000Pcap, `eth.dst == ${MACS.e1000}`, [
        'frame.len',
        'tcp.len',
        'tcp.checksum.status',
      ]);
      expect(e1000Rows.length, 'frames in the capture vs the guest').toBe(guestRx.packets);
      // Linux's e1000 counts each frame's length without the FCS, short ones padded to 60.
      const bytes = e1000Rows.reduce((a, r) => a + Math.max(60, r[0]), 0);
      expect(bytes, 'bytes in the capture vs the guest').toBe(guestRx.bytes);
      const data = e1000Rows.filter((r) => r[1] > 0);
      expect(data.filter((r) => r[2] !== 1)).toEqual([]);
      // Full frames are the aligned pieces the guest got, not 1460-byte MSS frames.
      const full = data.filter((r) => r[1] >= 1460 - 7);
      expect(full.filter((r) => r[1] === 1456).length).toBeGreaterThan(full.length * 0.9);
    } finally {
      g.vm.stop();
      await g.done;
      await g.vm.close();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
