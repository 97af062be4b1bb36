/**
 * IP fragments over net=user with the bundled guest (virtio-net and e1000), as QEMU's slirp
 * does: `ping -s 4000 10.0.2.2` leaves the guest in three fragments, is reassembled and
 * answered, and the 4008-byte reply comes back fragmented to the guest's MTU; the largest ping
 * (65507 bytes of ICMP, 45 fragments each way) and `ping6 -s 4000 fec0::2` (IPv6 fragment
 * headers both ways) too. Busybox's nc has no UDP mode, so the large UDP datagrams come from
 * its tftp with 8 KiB blocks (RFC 2348), against a small TFTP server this test runs on the
 * host's 127.0.0.1: the guest's put is one 8196-byte datagram (reassembled by the NAT, seen
 * whole by the host socket), its get brings the same bytes back as one 8196-byte datagram from
 * the host (fragmented to the guest); md5sums must match.
 */
import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig } from '../../main/vm/config.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

/**
 * A TFTP server (RFC 1350, blksize option of RFC 2348) keeping files in memory, answering from
 * its one socket (the NAT shows every answer from the port the guest asked anyway). `sizes`
 * holds the length of every datagram it received and sent.
 */
async function tftpServer() {
  const sock: Socket = createSocket('udp4');
  const files = new Map<string, Buffer>();
  const got: number[] = [];
  const sent: number[] = [];
  const peers = new Map<string, { name: string; blk: number; data: Buffer[]; block: number }>();
  const send = (b: Buffer, port: number, addr: string) => {
    sent.push(b.length);
    sock.send(b, port, addr);
  };
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const dataBlock = (file: Buffer, blk: number, n: number) =>
    Buffer.concat([u16(3), u16(n), file.subarray((n - 1) * blk, n * blk)]);
  sock.on('message', (m, r) => {
    got.push(m.length);
    const key = `${r.address}:${r.port}`;
    const op = m.readUInt16BE(0);
    if (op === 1 || op === 2) {
      const [name, , ...opts] = m.subarray(2).toString('latin1').split('\0');
      const i = opts.indexOf('blksize');
      const blk = i >= 0 ? Number(opts[i + 1]) : 512;
      peers.set(key, { name, blk, data: [], block: 0 });
      const oack = Buffer.concat([u16(6), Buffer.from(`blksize\0${blk}\0`, 'latin1')]);
      send(i >= 0 ? oack : Buffer.concat([u16(4), u16(0)]), r.port, r.address);
      if (op === 1 && i < 0) send(dataBlock(files.get(name)!, blk, 1), r.port, r.address);
      return;
    }
    const p = peers.get(key);
    if (!p) return;
    if (op === 3) {
      const n = m.readUInt16BE(2);
      if (n === p.block + 1) {
        p.block = n;
        p.data.push(m.subarray(4));
        if (m.length - 4 < p.blk) files.set(p.name, Buffer.concat(p.data));
      }
      send(Buffer.concat([u16(4), u16(n)]), r.port, r.address);
    } else if (op === 4) {
      const n = m.readUInt16BE(2);
      const file = files.get(p.name) ?? Buffer.alloc(0);
      if (n * p.blk <= file.length) send(dataBlock(file, p.blk, n + 1), r.port, r.address);
    }
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return { sock, files, got, sent, port: (sock.address() as AddressInfo).port };
}

describe.each(['virtio', 'e1000'] as const)('net=user IP fragments on %s', (model) => {
  it('ping -s 4000 and -s 65499 10.0.2.2, ping6 -s 4000 fec0::2 answered; 8 KiB UDP datagrams round-trip via host TFTP', async () => {
    const tftp = await tftpServer();
    const cfg = {
      ...defaultVmConfig('natfrag'),
      nics: [{ model, net: 'user', mac: '52:54:00:12:37:01' }],
    };
    const g = new Guest(await VirtMachine.open(cfg));
    try {
      await g.expect(/~# /, 120_000);
      await g.run(
        'udhcpc -i eth0 -q -n -t 5 >/dev/null 2>&1; ip -4 addr show dev eth0',
        /inet 10\.0\.2\.15\/24/,
        30_000,
      );
      await g.run(
        'ping -c 2 -s 4000 10.0.2.2',
        /2 packets transmitted, 2 packets received/,
        30_000,
      );
      // The largest there is: 65507 bytes of ICMP in 45 fragments each way.
      await g.run(
        'ping -c 1 -s 65499 10.0.2.2',
        /1 packets transmitted, 1 packets received/,
        30_000,
      );
      // IPv6: the guest's fragment headers (RFC 8200 4.5), and ours on the reply.
      await g.run(
        'for i in $(seq 60); do ip -6 addr show dev eth0 | grep -q "inet6 fec0::" && ! ip -6 addr show dev eth0 | grep -q tentative && break; sleep 0.5; done; ping6 -c 2 -s 4000 fec0::2',
        /2 packets transmitted, 2 packets received/,
        60_000,
      );
      const sent = await g.run(
        'dd if=/dev/urandom of=/tmp/u bs=8192 count=1 2>/dev/null; md5sum /tmp/u',
        /^([0-9a-f]{32})\s+\/tmp\/u\r?$/m,
      );
      await g.run(
        `tftp -b 8192 -p -l /tmp/u -r f 10.0.2.2 ${tftp.port}; echo put=$?`,
        /put=0/,
        30_000,
      );
      // The guest's 8 KiB block reached the host socket as one datagram, intact.
      expect(tftp.got).toContain(4 + 8192);
      expect(createHash('md5').update(tftp.files.get('f')!).digest('hex')).toBe(sent[1]);
      const back = await g.run(
        `tftp -b 8192 -g -l /tmp/r -r f 10.0.2.2 ${tftp.port}; wc -c < /tmp/r; md5sum /tmp/r`,
        /^\s*(\d+)\r?\n([0-9a-f]{32})\s+\/tmp\/r\r?$/m,
        30_000,
      );
      expect(tftp.sent).toContain(4 + 8192);
      expect(back[1]).toBe('8192');
      expect(back[2]).toBe(sent[1]);
      const s = g.vm.stats().nics![g.vm.nic(0).name];
      // Five pings and the put's block reassembled; five replies and the get's block fragmented.
      expect(s.net_backend_frag_reassembled).toBe(6);
      expect(s.net_backend_icmp_echo_replies).toBe(3);
      expect(s.net_backend_icmp6_echo_replies).toBe(2);
      expect(s.net_backend_frag_out_datagrams).toBe(6);
      expect(s.net_backend_frag_datagrams).toBe(0);
    } finally {
      g.vm.stop();
      await g.done;
      await g.vm.close();
      tftp.sock.close();
    }
  }, 180_000);
});
