/**
 * VM snapshots through the CLI's monitor, as a user takes them: the bundled kernel with its root
 * on a qcow2 (an ext4 image made by mke2fs, converted by qemu-img) writes a file and sets a shell
 * variable; `savevm A` takes the whole VM and the guest runs on (it answers); the file and the
 * variable change; `loadvm A` brings both back in the same terminal session and the VM keeps
 * running; `info snapshots` lists A with its disk snapshot. In a new process, `run --restore`
 * of A's state file reverts the disk and resumes the snapshot; `delvm A` there removes it, and
 * qemu-img agrees (no snapshot A, image clean). A writable raw disk refuses savevm with one line and the
 * guest runs on.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { env, images, makeRootImage, missingTools, tool } from './root-disk.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const PROMPT = /# /;
const tools = missingTools(['mke2fs', 'cpio', 'qemu-img']);

/** A udhcpc script (busybox calls it with $1 = deconfig|bound|renew and the lease in env). */
const DHCP_SCRIPT = [
  '#!/bin/sh',
  'case "$1" in',
  'deconfig) ip addr flush dev $interface; ip link set $interface up;;',
  'bound|renew) ip addr add $ip/$mask dev $interface; ip route add default via $router dev $interface; echo "lease $interface $ip";;',
  'esac',
].join('\n');

/** A host TCP server that keeps what each connection sent. */
async function recorder(): Promise<{ server: Server; port: number; conns: string[] }> {
  const conns: string[] = [];
  const server = createServer((sock) => {
    const i = conns.push('') - 1;
    sock.on('data', (b) => (conns[i] += b.toString('latin1')));
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, conns };
}

describe.skipIf(tools.length > 0)(`savevm / loadvm / delvm (needs ${tools.join(', ')})`, () => {
  let dir: string;
  let qcow: string;
  let dataDir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-vmsnap-'));
    const raw = makeRootImage(dir);
    qcow = join(dir, 'root.qcow2');
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', raw, qcow]);
    dataDir = join(dir, 'data');
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const boot = (disks: string[], log: string, more: string[] = []): SerialSession =>
    SerialSession.spawn(
      process.execPath,
      [
        cli,
        'run',
        '--kernel',
        join(images, 'Image.gz'),
        ...disks.flatMap((d) => ['--disk', d]),
        '--append',
        'console=ttyS0 root=/dev/vda rw',
        ...more,
      ],
      {
        logFile: join(root, 'test-artifacts', log),
        env: { ...env, WASMVISOR_DATA_DIR: dataDir },
      },
    );

  it('takes A while running (a TCP connection through NAT goes on), goes back to it after changes, lists and deletes it', async () => {
    const rec = await recorder();
    const s = boot([`${qcow},format=qcow2`], 'vm-snapshots.log', ['--nic', 'virtio,net=user']);
    try {
      await s.expect(PROMPT, 90_000);
      const script = DHCP_SCRIPT.replace(/'/g, "'\\''");
      s.sendLine(
        `printf '%s\\n' '${script}' > /tmp/dhcp.sh; chmod +x /tmp/dhcp.sh; echo ok$((40+2))`,
      );
      await s.expect(/^ok42\r?$/m, 10_000);
      s.sendLine('udhcpc -i eth0 -s /tmp/dhcp.sh -q -n -t 5');
      await s.expect(/lease eth0 10\.0\.2\.15/, 30_000);
      s.sendLine('echo first > /root/f.txt; sync; V=one; echo set-$V');
      await s.expect(/^set-one\r?$/m, 10_000);
      // A connection to the host that spans the take: one line before it, one after.
      s.sendLine(`(echo before; sleep 4; echo after) | nc 10.0.2.2 ${rec.port} & echo bg`);
      await s.expect(/^bg\r?$/m, 10_000);
      await expect.poll(() => rec.conns[0], { timeout: 10_000 }).toBe('before\n');
      await s.monitorCommand(
        'savevm A',
        /^snapshot "A" taken in [\d.]+ s \(VM state [\d.]+ MiB; disks: .*root\.qcow2 \(id 1\)\)\r?$/m,
      );
      // The guest runs on after the take: the connection carries its second line, the shell
      // answers, and changes its file and variable.
      await expect.poll(() => rec.conns[0], { timeout: 15_000 }).toBe('before\nafter\n');
      expect(rec.conns).toHaveLength(1);
      s.sendLine('echo alive-$V; echo second > /root/f.txt; sync; V=two; cat /root/f.txt');
      await s.expect(/^alive-one\r?$/m, 10_000);
      await s.expect(/^second\r?$/m, 10_000);
      await s.monitorCommand('loadvm A', /^reverted to snapshot "A"; the VM runs on from it\r?$/m);
      // The same terminal session: the shell of the snapshot, its file on the disk.
      s.sendLine('echo v=$V; cat /root/f.txt');
      await s.expect(/^v=one\r?$/m, 20_000);
      await s.expect(/^first\r?$/m, 10_000);
      // And the VM keeps running from there: a write and a read after the revert.
      s.sendLine('echo third > /root/g.txt; sync; cat /root/g.txt');
      await s.expect(/^third\r?$/m, 10_000);
      const list = await s.monitorCommand(
        'info snapshots',
        /^A\s+[\d.]+ MiB\s+\S+ \S+\s+\S+\s+(.*)\r?$/m,
      );
      expect(list.match[1]).toMatch(/root\.qcow2 \(id 1\)$/);
      expect(readdirSync(join(dataDir, 'snapshots', 'bundled'))).toEqual(['A.vm']);
      // The disk snapshot is in the image, as qemu-img sees it (-U: the VM holds the lock).
      expect(tool('qemu-img', ['snapshot', '-U', '-l', qcow]).out).toMatch(/^1\s+A\s/m);
      s.sendLine('sync; poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
      rec.server.close();
    }
    // Later, in a new process: `run --restore` of the snapshot's file reverts the disk first
    // (QEMU's -loadvm): the snapshot's shell, its file, and not the file written after it.
    const stateFile = join(dataDir, 'snapshots', 'bundled', 'A.vm');
    const r = SerialSession.spawn(process.execPath, [cli, 'run', '--restore', stateFile], {
      logFile: join(root, 'test-artifacts', 'vm-snapshots-restore.log'),
      env: { ...env, WASMVISOR_DATA_DIR: dataDir },
    });
    try {
      r.sendLine('echo v=$V; cat /root/f.txt; ls /root/g.txt 2>&1 | grep -c "No such"');
      await r.expect(/^v=one\r?$/m, 30_000);
      await r.expect(/^first\r?$/m, 10_000);
      await r.expect(/^1\r?$/m, 10_000);
      await r.monitorCommand('delvm A', /^snapshot "A" deleted \(from .*root\.qcow2\)\r?$/m);
      await r.monitorCommand('info snapshots', /^There is no snapshot available\.\r?$/m);
      expect(existsSync(stateFile)).toBe(false);
      r.sendLine('sync; poweroff');
      expect((await r.waitForExit(30_000)).code).toBe(0);
    } finally {
      await r.close();
    }
    const list = tool('qemu-img', ['snapshot', '-l', qcow]);
    expect(list.status).toBe(0);
    expect(list.out).not.toMatch(/\sA\s/);
    const check = tool('qemu-img', ['check', qcow]);
    expect(check.status, check.out).toBe(0);
  }, 240_000);

  it('a writable raw disk refuses savevm with one line naming it; the guest runs on', async () => {
    const raw = join(dir, 'scratch.img');
    writeFileSync(raw, new Uint8Array(1 << 20));
    const s = boot([`${qcow},format=qcow2`, raw], 'vm-snapshots-raw.log');
    try {
      await s.expect(PROMPT, 90_000);
      await s.monitorCommand(
        'savevm B',
        new RegExp(
          `^cannot take a snapshot: disk ${raw} is writable but a raw image cannot hold snapshots`,
          'm',
        ),
      );
      s.sendLine('echo still-$((6*7))');
      await s.expect(/^still-42\r?$/m, 10_000);
      s.sendLine('sync; poweroff');
      expect((await s.waitForExit(30_000)).code).toBe(0);
    } finally {
      await s.close();
    }
    expect(tool('qemu-img', ['snapshot', '-l', qcow]).out).not.toMatch(/\sB\s/);
    expect(existsSync(join(dataDir, 'snapshots', 'bundled', 'B.vm'))).toBe(false);
  }, 180_000);
});
