/**
 * Saving a running VM from the monitor and resuming it in a new process, through the CLI: the
 * bundled kernel with its root on a virtio-blk disk and a NIC on net=user (virtio-net, then
 * e1000) gets a DHCP lease, sets a shell variable and writes a file; `save FILE` in the monitor
 * ends the process; after a pause, `wasmvisor run --restore FILE` brings back the same shell
 * (the variable), the file, the NIC's address (it pings the gateway), and a guest clock that
 * moved on by the time the VM ran, not by the time the file sat on disk. Bad files and
 * conflicting flags are one line.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SerialSession } from './serial-session.js';
import { env, images, makeRootImage, missingTools } from './root-disk.js';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'bin', 'wasmvisor.mjs');
const PROMPT = /# /;
const tools = missingTools(['mke2fs', 'cpio']);

/** A udhcpc script (busybox calls it with $1 = deconfig|bound|renew and the lease in env). */
const DHCP_SCRIPT = [
  '#!/bin/sh',
  'case "$1" in',
  'deconfig) ip addr flush dev $interface; ip link set $interface up;;',
  'bound|renew) ip addr add $ip/$mask dev $interface; ip route add default via $router dev $interface; echo "lease $interface $ip";;',
  'esac',
].join('\n');

const uptime = async (s: SerialSession): Promise<number> => {
  s.sendLine('echo up=$(cut -d" " -f1 /proc/uptime)');
  const r = await s.expect(/^up=(\d+\.\d+)\r?$/m, 10_000);
  return Number(r.match[1]);
};

describe.skipIf(tools.length > 0)(`save and --restore (needs ${tools.join(', ')})`, () => {
  let dir: string;
  let img: string;
  let file: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wasmvisor-vmstate-'));
    img = makeRootImage(dir);
    file = join(dir, 'saved.vm');
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // virtio-net (paravirtual: rings in guest RAM) and e1000 (full emulation: descriptor ring
  // registers in the model): both must carry traffic again after the resume.
  it.each(['virtio', 'e1000'])(
    '%s: the same shell, file, lease and clock come back in a new process',
    async (nic) => {
      const token = `state-${process.pid}-${Date.now().toString(36)}`;
      const a = SerialSession.spawn(
        process.execPath,
        [
          cli,
          'run',
          '--kernel',
          join(images, 'Image.gz'),
          '--disk',
          img,
          '--append',
          'console=ttyS0 root=/dev/vda rw',
          '--nic',
          `${nic},net=user`,
        ],
        { logFile: join(root, 'test-artifacts', `vm-state-${nic}-1.log`), env },
      );
      let u1: number;
      let t1: number;
      try {
        await a.expect(PROMPT, 90_000);
        const script = DHCP_SCRIPT.replace(/'/g, "'\\''");
        a.sendLine(
          `printf '%s\\n' '${script}' > /tmp/dhcp.sh; chmod +x /tmp/dhcp.sh; echo ok$((40+2))`,
        );
        await a.expect(/^ok42\r?$/m, 10_000);
        a.sendLine('udhcpc -i eth0 -s /tmp/dhcp.sh -q -n -t 5');
        await a.expect(/lease eth0 10\.0\.2\.15/, 30_000);
        a.sendLine(`KEPT=${token}; echo ${token} > /root/state.txt; echo kept-$KEPT`);
        await a.expect(new RegExp(`^kept-${token}\\r?$`, 'm'), 10_000);
        u1 = await uptime(a);
        t1 = performance.now();
        a.send('\x01c');
        await a.expect('(wasmvisor) ', 5_000);
        // A save that cannot write its file says why, and the VM runs on.
        a.sendLine(`save ${dir}/no-such-dir/x.vm`);
        await a.expect(
          /cannot write .*no-such-dir\/x\.vm: its directory does not exist\r?$/m,
          30_000,
        );
        a.send('\x01c');
        a.sendLine('echo still-$KEPT');
        await a.expect(new RegExp(`^still-${token}\\r?$`, 'm'), 10_000);
        a.send('\x01c');
        await a.expect('(wasmvisor) ', 5_000);
        a.sendLine(`save ${file}`);
        await a.expect(/saved to .*saved\.vm \([\d.]+ MiB\); the VM stopped/, 60_000);
        const exit = await a.waitForExit(15_000);
        expect(exit.code).toBe(0);
      } finally {
        await a.close();
      }
      // The file sits on disk a while: the guest must not see this time pass.
      const GAP_S = 4;
      await new Promise((r) => setTimeout(r, GAP_S * 1000));

      const b = SerialSession.spawn(process.execPath, [cli, 'run', '--restore', file], {
        logFile: join(root, 'test-artifacts', `vm-state-${nic}-2.log`),
        env,
      });
      try {
        b.sendLine('echo got-$KEPT');
        await b.expect(new RegExp(`^got-${token}\\r?$`, 'm'), 30_000);
        const u2 = await uptime(b);
        const hostS = (performance.now() - t1) / 1000;
        // The guest's clock went on by about the time the VM ran, not by the gap.
        expect(u2).toBeGreaterThan(u1);
        expect(u2 - u1).toBeLessThan(hostS - GAP_S + 0.5);
        b.sendLine('cat /root/state.txt');
        await b.expect(new RegExp(`^${token}\\r?$`, 'm'), 10_000);
        b.sendLine('ip -4 addr show eth0 | grep -o "inet [0-9.]*"');
        await b.expect(/^inet 10\.0\.2\.15\r?$/m, 10_000);
        b.sendLine('ping -c 1 -W 5 10.0.2.2');
        await b.expect(/1 packets transmitted, 1 packets received/, 20_000);
        b.sendLine('sync; poweroff');
        expect((await b.waitForExit(30_000)).code).toBe(0);
      } finally {
        await b.close();
      }
    },
    240_000,
  );

  it('a damaged file, a missing one and flags that conflict are one line each', () => {
    const run = (...args: string[]): { status: number | null; err: string } => {
      const r = spawnSync(process.execPath, [cli, 'run', ...args], { encoding: 'utf-8', env });
      return { status: r.status, err: r.stderr };
    };
    const conflict = run('--restore', file, '--mem', '512M');
    expect(conflict.status).toBe(2);
    expect(conflict.err).toMatch(
      /--restore takes the VM's definition from the file; --mem cannot go with it/,
    );
    const bytes = readFileSync(file);
    const cut = join(dir, 'cut.vm');
    writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
    const r = run('--restore', cut);
    expect(r.status).toBe(1);
    expect(r.err.trim()).toBe(
      `wasmvisor: ${cut}: truncated: ${bytes.length >> 1} of ${bytes.length} bytes`,
    );
    const missing = run('--restore', join(dir, 'nope.vm'));
    expect(missing.err.trim()).toBe(`wasmvisor: ${join(dir, 'nope.vm')}: no such file`);
  });
});
