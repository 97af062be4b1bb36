/**
 * virtio-net's receive filter driven by the real Linux driver through the control queue: two
 * guests on one switch. Frames for a MAC nobody has (the switch floods them) are kept from the
 * guest until `ip link set eth0 promisc on`; the all-hosts multicast group the guest joined
 * still gets through; `ip link set eth0 address` moves the filter to the new MAC (the peer's
 * stale ARP entry now points at a MAC the device drops); and the device asking the guest to
 * announce itself (GUEST_ANNOUNCE, when the NIC is moved onto a network) makes it send the
 * gratuitous ARP that repairs the peer's entry.
 */
import { describe, it, expect } from 'vitest';
import type { InProcessGuest as Guest } from '../../bench/in-process-guest.js';
import { guestsOnSwitch, ipv4Up, shutdown } from './switch-guests.js';

/** The guest's own count of frames its NIC gave it. */
async function rxPackets(g: Guest): Promise<number> {
  const m = await g.run('echo rx=$(cat /sys/class/net/eth0/statistics/rx_packets)', /rx=(\d+)/);
  return Number(m[1]);
}

async function until(ok: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const nicStats = (g: Guest): Record<string, number> => g.vm.stats().nics![g.vm.nic(0).name];

describe('virtio-net receive filter with the Linux driver', () => {
  it('promisc, multicast, a MAC change and an announce, as a guest sees them', async () => {
    const [a, b] = await guestsOnSwitch({
      models: ['virtio', 'virtio'],
      sw: 'filter',
      name: 'filter',
      macByte: '03',
      ...ipv4Up,
    });
    try {
      await b.run('ping -c 2 10.0.0.1', /2 packets transmitted, 2 packets received/);
      // Linux turned promiscuous mode off at `ip link set up` and put its groups in the table.
      expect(nicStats(a)).toMatchObject({ rx_mode_promisc: 0, rx_mode_allmulti: 0 });
      expect(nicStats(a).mac_table_multicast).toBeGreaterThanOrEqual(1); // 01:00:5e:00:00:01
      expect(nicStats(a).ctrl_errors).toBe(0);

      // B sends to a MAC nobody has: the switch floods it to A, whose device drops it.
      await b.run('arp -s 10.0.0.9 02:00:00:00:00:09; echo ok$((40+2))', /ok42/);
      const filtered0 = nicStats(a).rx_filtered;
      const rx0 = await rxPackets(a);
      await b.run('ping -c 3 -W 1 10.0.0.9', /3 packets transmitted, 0 packets received/);
      expect(nicStats(a).rx_filtered - filtered0).toBeGreaterThanOrEqual(3);
      expect((await rxPackets(a)) - rx0).toBeLessThan(3);

      // In promiscuous mode A's guest sees them.
      await a.run('ip link set eth0 promisc on; echo ok$((40+2))', /ok42/);
      expect(nicStats(a).rx_mode_promisc).toBe(1);
      const filtered1 = nicStats(a).rx_filtered;
      const rx1 = await rxPackets(a);
      await b.run('ping -c 3 -W 1 10.0.0.9', /3 packets transmitted, 0 packets received/);
      expect((await rxPackets(a)) - rx1).toBeGreaterThanOrEqual(3);
      expect(nicStats(a).rx_filtered).toBe(filtered1);
      await a.run('ip link set eth0 promisc off; echo ok$((40+2))', /ok42/);
      expect(nicStats(a).rx_mode_promisc).toBe(0);

      // The all-hosts group A joined passes the filter: A answers a ping to 224.0.0.1.
      await a.run(
        'echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_broadcasts; echo ok$((40+2))',
        /ok42/,
      );
      await b.run(
        'ping -c 2 -I eth0 224.0.0.1',
        /64 bytes from 10\.0\.0\.1[\s\S]*2 packets transmitted, 2 packets received/,
      );

      // A new MAC: B's ARP entry still names the old one, which A's device now drops.
      await a.run('ip link set eth0 address 02:00:00:00:03:01; echo ok$((40+2))', /ok42/);
      const filtered2 = nicStats(a).rx_filtered;
      await b.run('ping -c 2 -W 1 10.0.0.1', /2 packets transmitted, 0 packets received/);
      expect(nicStats(a).rx_filtered - filtered2).toBeGreaterThanOrEqual(2);
      // With a fresh ARP lookup B reaches A at its new MAC.
      await b.run(
        'arp -d 10.0.0.1; ping -c 2 10.0.0.1',
        /2 packets transmitted, 2 packets received/,
      );
      await b.run('arp -n', /10\.0\.0\.1.*02:00:00:00:03:01/);

      // Once more, then the NIC is moved (onto the same switch, as after a migration): the
      // device asks the guest to announce itself, and its gratuitous ARP fixes B's entry.
      await a.run('ip link set eth0 address 02:00:00:00:03:11; echo ok$((40+2))', /ok42/);
      await b.run('ping -c 1 -W 1 10.0.0.1', /1 packets transmitted, 0 packets received/);
      const acks = nicStats(a).announce_acks;
      a.vm.nic(0).port.setBackend('switch:filter');
      // (The guest answers from a work item: allow it a few seconds of a loaded host.)
      await b.run(
        'for i in $(seq 20); do arp -n | grep -q 03:11 && break; sleep 0.5; done; arp -n',
        /10\.0\.0\.1.*02:00:00:00:03:11/,
      );
      await until(() => nicStats(a).announce_acks === acks + 1);
      expect(nicStats(a).announces).toBeGreaterThanOrEqual(1);
      await b.run('ping -c 2 10.0.0.1', /2 packets transmitted, 2 packets received/);
      expect(nicStats(a).ctrl_errors).toBe(0);
      expect(nicStats(a).ctrl_malformed).toBe(0);
    } finally {
      await shutdown([a, b]);
    }
  }, 300_000);
});
