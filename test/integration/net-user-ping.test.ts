/**
 * Ping beyond the gateway over net=user with the bundled guest: busybox `ping -c 3` to the
 * host's own non-loopback IPv4 address (never the internet: CI has no network) goes out through
 * the host's ICMP echo socket and all three replies come back; the NIC then moves to
 * `user,restrict=on` and the same ping gets no reply (nothing leaves the NAT), while the gateway
 * still answers. Skipped, saying why, on a host that allows neither an ICMP datagram socket
 * (net.ipv4.ping_group_range) nor a raw one (root / CAP_NET_RAW), or has no such address.
 */
import { describe, it, expect } from 'vitest';
import { networkInterfaces } from 'node:os';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig } from '../../main/vm/config.js';
import { hostEchoSocket } from '../../devices/net/user/icmp-relay.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

/** The host's first non-loopback IPv4 address. */
function hostAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

/** Why this host cannot relay ping (undefined: it can). */
function unavailable(): string | undefined {
  try {
    hostEchoSocket(false, () => {}).close();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('net=user ping beyond the gateway', () => {
  it('ping -c 3 to the host address gets 3 replies; with restrict=on none', async (ctx) => {
    const addr = hostAddress();
    if (!addr) return ctx.skip('the host has no non-loopback IPv4 address');
    const why = unavailable();
    if (why) {
      console.log(`skipped: no host ICMP socket: ${why}`);
      return ctx.skip(why);
    }
    const cfg = {
      ...defaultVmConfig('natping'),
      nics: [{ model: 'virtio' as const, net: 'user', mac: '52:54:00:12:37:09' }],
    };
    const g = new Guest(await VirtMachine.open(cfg));
    try {
      await g.expect(/~# /, 120_000);
      await g.run(
        'udhcpc -i eth0 -q -n -t 5 >/dev/null 2>&1; ip -4 addr show dev eth0; ip route',
        /default via 10\.0\.2\.2/,
        30_000,
      );
      const r = await g.run(
        `ping -c 3 ${addr}`,
        /bytes from ([\d.]+): seq=2 ttl=(\d+)[\s\S]*?(\d+) packets transmitted, (\d+) packets received/,
        30_000,
      );
      expect(r[1]).toBe(addr);
      // The host's reply TTL less one for the NAT's hop: sane, not 0 or a copy of the request's.
      expect(Number(r[2])).toBeGreaterThan(1);
      expect(Number(r[2])).toBeLessThan(255);
      expect([r[3], r[4]]).toEqual(['3', '3']);
      const nic = g.vm.nic(0);
      const s = g.vm.stats().nics![nic.name];
      expect(s.net_backend_icmp_echo_relayed).toBe(3);
      expect(s.net_backend_icmp_echo_relayed_replies).toBe(3);
      expect(s.net_backend_icmp_echoes).toBe(0);

      nic.port.setBackend('user,restrict=on');
      await g.run('sleep 3; cat /sys/class/net/eth0/carrier', /^1\r?$/m);
      const none = await g.run(
        `ping -c 3 -W 2 ${addr}`,
        /(\d+) packets transmitted, (\d+) packets received/,
        30_000,
      );
      expect([none[1], none[2]]).toEqual(['3', '0']);
      await g.run('ping -c 1 10.0.2.2', /1 packets transmitted, 1 packets received/, 30_000);
      const t = g.vm.stats().nics![nic.name];
      expect(t.net_backend_drop_restricted).toBe(3);
      expect(t.net_backend_icmp_echo_relayed ?? 0).toBe(0);
      expect(t.net_backend_icmp_echo_replies).toBe(1);
    } finally {
      g.vm.stop();
      await g.done;
      await g.vm.close();
    }
  }, 240_000);
});
