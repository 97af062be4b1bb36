/**
 * Packed virtqueues with Linux's own drivers: the bundled kernel booted through the CLI with
 * `--virtio-packed` and every kind of virtio device (a root disk and a second disk on
 * virtio-pci, virtio-net on virtio-mmio and on virtio-pci over net=user, virtio-rng, the
 * balloon with its statistics queue, and the console on hvc0). Each driver must negotiate
 * VIRTIO_F_RING_PACKED (feature bit 34 in sysfs), and carry data: the second disk's sectors
 * match what the test wrote into the image on the host, a file downloaded from a host HTTP
 * server over each NIC arrives whole, /dev/hwrng gives bytes, the shell runs on hvc0. Then the
 * VM is saved from the monitor with buffers in flight (the balloon holds its statistics
 * buffer) and resumed in a new process, where the disks, the NICs and the balloon go on.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { env, images, makeRootImage, missingTools } from './root-disk.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const tools = missingTools(['mke2fs', 'cpio']);
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

describe.skipIf(tools.length > 0)(
  `packed virtqueues in a Linux guest (needs ${tools.join(', ')})`,
  () => {
    let dir: string;
    let img: string;
    let data: string;
    let pattern: Buffer;
    let payload: Buffer;
    let server: Server;
    let port: number;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'wasmvisor-packed-'));
      img = makeRootImage(dir);
      data = join(dir, 'data.img');
      pattern = randomBytes(2 << 20);
      writeFileSync(data, Buffer.concat([pattern, Buffer.alloc(2 << 20)]));
      payload = randomBytes(1 << 20);
      server = createServer((_req, res) => res.end(payload));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as { port: number }).port;
    });

    afterAll(async () => {
      await new Promise((r) => server?.close(r));
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('every driver takes packed rings and moves data; a save and --restore keep them going', async () => {
      const saved = join(dir, 'packed.vm');
      const a = SerialSession.spawn(
        process.execPath,
        [
          cli,
          'run',
          '--kernel',
          join(images, 'Image.gz'),
          '--disk',
          img,
          '--disk',
          `${data},bus=pci`,
          '--nic',
          'virtio,net=user',
          '--nic',
          'virtio-pci,net=user',
          '--rng',
          '--balloon,stats=1',
          '--console',
          'hvc0',
          '--append',
          'console=hvc0 root=/dev/vda rw',
          '--virtio-packed',
        ],
        { logFile: join(root, 'test-artifacts', 'virtio-packed-1.log'), env },
      );
      try {
        await a.expect(/# /, 90_000);
        // Device ID and bit 34 (VIRTIO_F_RING_PACKED) of the features the driver accepted.
        a.sendLine(
          'for d in /sys/bus/virtio/devices/*; do echo "dev $(cat $d/device) $(cut -c35 $d/features)"; done; echo listed',
        );
        const listed = await a.expect(/^listed\r?$/m, 10_000);
        const devs = [...listed.before.matchAll(/^dev 0x000(\d) ([01])\r?$/gm)].map((m) => [
          Number(m[1]),
          m[2],
        ]);
        // blk ×2, net ×2, console, rng, balloon: all seven on packed rings.
        expect(devs.map((d) => d[0]).sort()).toEqual([1, 1, 2, 2, 3, 4, 5]);
        expect(devs.every((d) => d[1] === '1')).toBe(true);

        // The second disk (virtio-pci): the sectors the host wrote, read back whole.
        a.sendLine('dd if=/dev/vdb bs=64k count=32 2>/dev/null | md5sum');
        await a.expect(new RegExp(`^${md5(pattern)}\\s`, 'm'), 30_000);
        // And written by the guest: its own bytes past the pattern, read back after a sync.
        a.sendLine(
          'dd if=/dev/urandom of=/tmp/w bs=64k count=16 2>/dev/null; dd if=/tmp/w of=/dev/vdb bs=64k seek=32 conv=fsync 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches; a=$(md5sum < /tmp/w); b=$(dd if=/dev/vdb bs=64k skip=32 count=16 2>/dev/null | md5sum); [ "$a" = "$b" ] && echo disk-same',
        );
        await a.expect(/^disk-same\r?$/m, 30_000);

        // Both NICs: a lease each, then a download from the host over each.
        for (const [i, eth] of ['eth0', 'eth1'].entries()) {
          a.sendLine(
            `ip link set ${eth} up; udhcpc -i ${eth} -q -n -t 5 2>&1 | grep -o "lease of [0-9.]*"`,
          );
          await a.expect(/^lease of 10\.0\.2\.15\r?$/m, 30_000);
          a.sendLine(
            `wget -q -O - http://10.0.2.2:${port}/${i} | md5sum; ip addr flush dev ${eth}; ip link set ${eth} down`,
          );
          await a.expect(new RegExp(`^${md5(payload)}\\s`, 'm'), 60_000);
        }

        a.sendLine('cat /sys/class/misc/hw_random/rng_current; head -c 64 /dev/hwrng | wc -c');
        await a.expect(/^virtio_rng\.\d+\r?\n64\r?$/m, 10_000);

        // Let the balloon's statistics queue go round (every second) before the save.
        a.sendLine('sleep 2; echo slept');
        await a.expect(/^slept\r?$/m, 10_000);
        a.send('\x01c');
        await a.expect('(wasmvisor) ', 5_000);
        a.sendLine(`save ${saved}`);
        await a.expect(/saved to .*packed\.vm .*the VM stopped/, 60_000);
        expect((await a.waitForExit(15_000)).code).toBe(0);
      } finally {
        await a.close();
      }

      const b = SerialSession.spawn(process.execPath, [cli, 'run', '--restore', saved], {
        logFile: join(root, 'test-artifacts', 'virtio-packed-2.log'),
        env,
      });
      try {
        b.sendLine('echo back-$((6*7))');
        await b.expect(/^back-42\r?$/m, 30_000);
        b.sendLine('dd if=/dev/vdb bs=64k count=32 2>/dev/null | md5sum');
        await b.expect(new RegExp(`^${md5(pattern)}\\s`, 'm'), 30_000);
        b.sendLine(
          'ip link set eth1 up; udhcpc -i eth1 -q -n -t 5 2>&1 | grep -o "lease of [0-9.]*"',
        );
        await b.expect(/^lease of 10\.0\.2\.15\r?$/m, 30_000);
        b.sendLine(`wget -q -O - http://10.0.2.2:${port}/again | md5sum`);
        await b.expect(new RegExp(`^${md5(payload)}\\s`, 'm'), 60_000);
        // The balloon still answers: the monitor inflates it and the guest's memory shrinks.
        b.send('\x01c');
        await b.expect('(wasmvisor) ', 5_000);
        b.sendLine('balloon 192');
        await b.expect(/target 192 MiB/, 10_000);
        b.send('\x01c');
        b.sendLine('sleep 3; grep MemTotal /proc/meminfo');
        const mem = await b.expect(/^MemTotal:\s+(\d+) kB\r?$/m, 20_000);
        expect(Number(mem.match[1])).toBeLessThan(200 * 1024);
        b.sendLine('sync; poweroff -f');
        expect((await b.waitForExit(30_000)).code).toBe(0);
      } finally {
        await b.close();
      }
    }, 300_000);
  },
);
