/**
 * IPv6 between two VMs on `switch:NAME` with static addresses fd00::1/64 and fd00::2/64:
 * neighbour discovery and ping6 both ways, then 4 MiB of random bytes over TCP/IPv6 (busybox
 * httpd + wget) whose md5sum must match on both sides.
 * - virtio ↔ virtio: the sender's TSO6 segments cross the switch whole (tx_gso on the sender,
 *   rx_gso on the receiver, nothing cut in software on the way);
 * - virtio → e1000: the e1000 cannot take a large segment, so its receive path cuts the
 *   sender's TSO6 segments (offload.ts segmentTcp) — a wrong IPv6 length or pseudo-header
 *   checksum there makes the receiving kernel drop every frame and the transfer stall; and
 *   1 MiB back from the e1000, whose driver offloads IPv6 TCP checksums to it (no TSO6).
 * tshark decodes the capture as ICMPv6 echo and TCP over IPv6 when it is installed.
 */
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { InProcessGuest as Guest } from '../../bench/in-process-guest.js';
import { guestsOnSwitch, hasTshark, shutdown } from './switch-guests.js';

const root = join(import.meta.dirname, '..', '..');
const artifacts = join(root, 'test-artifacts');
const MIB = 4;

function tshark(pcap: string, filter: string): string {
  return execFileSync('tshark', ['-r', pcap, '-Y', filter], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}

/** Guest i gets fd00::(i+1)/64 (DAD off: no 1 s wait). */
const ipv6Up = {
  up: (i: number): string =>
    'echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad && ip link set eth0 up && ' +
    `ip -6 addr add fd00::${i + 1}/64 dev eth0 && ip -6 addr show dev eth0 | grep -c 'inet6 fd00::${i + 1}/64'`,
  ready: /^1\r?$/m,
};

const nicStats = (g: Guest) => g.vm.stats().nics![g.vm.nic(0).name];

/** Awaits `p`; a timeout's message gets both NICs' counters (drops, backlog) to explain it. */
async function explained<T>(p: Promise<T>, guests: Guest[]): Promise<T> {
  try {
    return await p;
  } catch (e) {
    const s = guests.map((g) => JSON.stringify(nicStats(g)));
    throw new Error(`${(e as Error).message}\nNIC counters:\n${s.join('\n')}`);
  }
}

describe.each([
  ['virtio', 'virtio'],
  ['virtio', 'e1000'],
] as const)('IPv6 on switch: %s sender → %s receiver', (senderModel, receiverModel) => {
  it('ping6 both ways; a 4 MiB TCP/IPv6 transfer arrives intact; tshark reads ICMPv6 and TCP', async () => {
    mkdirSync(artifacts, { recursive: true });
    const pcap = join(artifacts, `net-switch-ipv6-${senderModel}-${receiverModel}.pcap`);
    // guest 1 (fd00::1) receives, guest 2 (fd00::2) serves the file
    const guests = await guestsOnSwitch({
      models: [receiverModel, senderModel],
      sw: `v6-${senderModel}-${receiverModel}`,
      name: 'v6',
      macByte: '06',
      capture: pcap,
      ...ipv6Up,
    });
    const [rx, tx] = guests;
    try {
      if (receiverModel === 'e1000') await rx.seen(/e1000: eth0 NIC Link is Up/, 20_000);
      await rx.run('ping6 -c 3 fd00::2', /3 packets transmitted, 3 packets received/, 60_000);
      await tx.run('ping6 -c 2 fd00::1', /2 packets transmitted, 2 packets received/, 60_000);

      const served = await tx.run(
        `mkdir -p /tmp/w && dd if=/dev/urandom of=/tmp/w/f bs=1024 count=${MIB * 1024} 2>/dev/null && ` +
          'httpd -h /tmp/w && md5sum /tmp/w/f',
        /^([0-9a-f]{32})\s+\/tmp\/w\/f\r?$/m,
      );
      const before = { tx: nicStats(tx), rx: nicStats(rx) };
      const got = await explained(
        rx.run(
          "wget -q -O - 'http://[fd00::2]/f' | tee /tmp/f | md5sum; wc -c </tmp/f",
          /^([0-9a-f]{32})\s+-\r?\n\s*(\d+)\r?$/m,
          180_000,
        ),
        guests,
      );
      expect(Number(got[2])).toBe(MIB * 1024 * 1024);
      expect(got[1]).toBe(served[1]);

      const s = { tx: nicStats(tx), rx: nicStats(rx) };
      // The sender's stack handed the NIC TCP segments larger than the MTU (TSO6)...
      expect(s.tx.tx_gso - before.tx.tx_gso).toBeGreaterThan(10);
      if (receiverModel === 'virtio') {
        // ...and they reached the other guest's ring in one piece, not cut on the way.
        expect(s.rx.rx_gso - before.rx.rx_gso).toBeGreaterThan(10);
        expect(s.rx.rx_segmented).toBe(0);
      } else {
        // ...which the e1000 receiver took as wire-sized frames (cut by offload.ts).
        expect(s.rx.rx_packets - before.rx.rx_packets).toBeGreaterThan((MIB * 1024 * 1024) / 1500);
        // The other way: Linux's e1000 has no TSO6, but offloads IPv6 TCP checksums to the NIC.
        const back = await rx.run(
          'mkdir -p /tmp/v && dd if=/dev/urandom of=/tmp/v/g bs=1024 count=1024 2>/dev/null && ' +
            'httpd -p 8080 -h /tmp/v && md5sum /tmp/v/g',
          /^([0-9a-f]{32})\s+\/tmp\/v\/g\r?$/m,
        );
        const csum0 = nicStats(rx).tx_csum_offload;
        const fetched = await explained(
          tx.run(
            "wget -q -O - 'http://[fd00::1]:8080/g' | md5sum",
            /^([0-9a-f]{32})\s+-\r?$/m,
            120_000,
          ),
          guests,
        );
        expect(fetched[1]).toBe(back[1]);
        expect(nicStats(rx).tx_csum_offload - csum0).toBeGreaterThan(500);
      }
    } finally {
      await shutdown(guests);
    }
    expect(statSync(pcap).size).toBeGreaterThan(24);
    if (!hasTshark()) {
      console.warn('tshark not installed: capture not decoded (apt-get install tshark)');
      return;
    }
    const icmp = tshark(pcap, 'icmpv6');
    expect(icmp).toMatch(/fd00::1 → fd00::2\s+ICMPv6 \d+ Echo \(ping\) request/);
    expect(icmp).toMatch(/fd00::2 → fd00::1\s+ICMPv6 \d+ Echo \(ping\) reply/);
    expect(icmp).toMatch(/Neighbor (Solicitation|Advertisement)/);
    expect(tshark(pcap, 'ipv6 && http.request')).toMatch(/GET \/f HTTP/);
    const data = tshark(pcap, 'ipv6.src == fd00::2 && tcp.len > 0');
    expect(data.trim().split('\n').length).toBeGreaterThan(10);
    // The capture holds wire frames (large segments cut by offload.ts): every TCP checksum over
    // the IPv6 pseudo-header verifies (Wireshark's status 1 = good, 0 = bad).
    const status = execFileSync(
      'tshark',
      [
        '-r',
        pcap,
        '-o',
        'tcp.check_checksum:TRUE',
        '-Y',
        'tcp',
        '-T',
        'fields',
        '-e',
        'tcp.checksum.status',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    )
      .trim()
      .split('\n');
    expect(status.length).toBeGreaterThan(1000);
    expect(status.filter((x) => x !== '1')).toEqual([]);
  }, 400_000);
});
